// kvactor-timeline: merges the timeline files of one job (KVACTOR_TIMELINE=path makes each
// process write <path>.<pid>.json) into one Chrome trace on one time axis, for
// chrome://tracing or https://ui.perfetto.dev.
//   kvactor-timeline -o merged.json /tmp/job.*.json
// Exit codes: 0 merged, 1 an input could not be read or is not a kvactor timeline, or the
// output could not be written, 2 bad usage.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "merge.hpp"

namespace {

int usage(const char* why) {
  if (why) std::cerr << "kvactor-timeline: " << why << "\n";
  std::cerr << "usage: kvactor-timeline -o OUT.json FILE.json...\n"
               "Merges the timeline files of one job (KVACTOR_TIMELINE=path writes "
               "<path>.<pid>.json per process)\ninto one trace on one time axis.\n";
  return why ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") return usage(nullptr);
    if (a == "-o") {
      if (i + 1 >= argc) return usage("-o needs a file name");
      out_path = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      return usage(("unknown option " + a).c_str());
    } else {
      paths.push_back(a);
    }
  }
  if (out_path.empty()) return usage("no output file (-o OUT.json)");
  if (paths.empty()) return usage("no input files");
  std::vector<kvactor::timeline_tool::input_file> files;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      std::cerr << "kvactor-timeline: cannot read " << p << ": " << std::strerror(errno) << "\n";
      return 1;
    }
    std::ostringstream text;
    text << in.rdbuf();
    files.push_back({p, text.str()});
  }
  auto m = kvactor::timeline_tool::merge_timelines(files);
  if (!m) {
    std::cerr << "kvactor-timeline: " << m.error().message() << "\n";
    return 1;
  }
  {
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    out << m->text;
    out.close();
    if (!out) {
      std::cerr << "kvactor-timeline: cannot write " << out_path << "\n";
      return 1;
    }
  }
  for (const auto& s : m->sources) {
    char first[64];
    std::snprintf(first, sizeof first, "%.3Lf ms", s.first_us / 1000);
    std::cout << "merged " << s.path << ": "
              << (s.process.empty() ? std::string{"(unnamed)"} : s.process) << ", pid " << s.pid;
    if (s.merged_pid != s.pid) std::cout << " (as pid " << s.merged_pid << ")";
    std::cout << ", " << s.events << " events";
    if (s.first_us >= 0) std::cout << ", the first at " << first;
    std::cout << "\n";
  }
  std::cout << "wrote " << out_path << ": " << m->events << " events from " << m->sources.size()
            << " files\n";
  return 0;
}

#include "merge.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

#include "json.hpp"

namespace kvactor::timeline_tool {

namespace {

struct loaded {
  json doc;
  long double offset_us = 0;  // system minus steady, from the anchor
  long double first_us = std::numeric_limits<long double>::infinity();
  merged_source src;
};

status refuse(const std::string& path, const std::string& why) {
  return status{errc::invalid_argument, path + ": not a kvactor timeline file: " + why};
}

std::string us_text(long double us) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3Lf", us);
  return buf;
}

bool whole_number(const json* v) {
  if (!v || !v->is(json::kind::number)) return false;
  const long double x = v->number();
  return x == static_cast<long double>(static_cast<std::int64_t>(x));
}

result<loaded> load(const input_file& f) {
  auto doc = parse_json(f.text);
  if (!doc) return refuse(f.path, doc.error().message());
  loaded l;
  l.doc = std::move(*doc);
  l.src.path = f.path;
  if (!l.doc.is(json::kind::object)) return refuse(f.path, "the top level is not an object");
  const json* events = l.doc.find("traceEvents");
  if (!events || !events->is(json::kind::array)) return refuse(f.path, "no traceEvents array");
  const json* other = l.doc.find("otherData");
  const json* anchor = other ? other->find("clock_anchor") : nullptr;
  const json* steady = anchor ? anchor->find("steady_us") : nullptr;
  const json* system = anchor ? anchor->find("system_us") : nullptr;
  if (!steady || !system || !steady->is(json::kind::number) || !system->is(json::kind::number))
    return refuse(f.path,
                  "no otherData.clock_anchor with steady_us and system_us (a merged trace "
                  "cannot be merged again; merge the per-process files)");
  l.offset_us = system->number() - steady->number();
  if (const json* name = other->find("process_name"); name && name->is(json::kind::string))
    l.src.process = name->text;
  const json* pid = other->find("pid");
  if (!whole_number(pid)) return refuse(f.path, "no numeric otherData.pid");
  l.src.pid = static_cast<std::int64_t>(pid->number());
  for (std::size_t i = 0; i < events->items.size(); ++i) {
    const json& e = events->items[i];
    const std::string which = "event " + std::to_string(i);
    if (!e.is(json::kind::object)) return refuse(f.path, which + " is not an object");
    if (!whole_number(e.find("pid"))) return refuse(f.path, which + " has no numeric pid");
    const json* ts = e.find("ts");
    if (ts) {
      if (!ts->is(json::kind::number)) return refuse(f.path, which + " has a ts that is no number");
      l.first_us = std::min(l.first_us, ts->number() + l.offset_us);
    }
  }
  l.src.events = events->items.size();
  return l;
}

}  // namespace

result<merged> merge_timelines(const std::vector<input_file>& files) {
  if (files.empty()) return status{errc::invalid_argument, "no timeline files to merge"};
  std::vector<loaded> all;
  for (const auto& f : files) {
    auto l = load(f);
    if (!l) return l.error();
    all.push_back(std::move(*l));
  }
  // Time zero: the job's earliest event, in system time.
  long double zero = std::numeric_limits<long double>::infinity();
  for (const auto& l : all)
    zero = std::min(zero, l.first_us);
  if (zero == std::numeric_limits<long double>::infinity()) zero = 0;
  // Pids stay; one already taken (two hosts) becomes one above every pid of the job.
  std::int64_t next_pid = 0;
  for (const auto& l : all)
    next_pid = std::max(next_pid, l.src.pid + 1);
  std::set<std::int64_t> taken;
  merged out;
  out.text = "{\"traceEvents\":[";
  bool first = true;
  for (auto& l : all) {
    l.src.merged_pid = taken.insert(l.src.pid).second ? l.src.pid : next_pid++;
    taken.insert(l.src.merged_pid);
    l.src.shift_us = l.offset_us - zero;
    l.src.first_us =
        l.first_us == std::numeric_limits<long double>::infinity() ? -1 : l.first_us - zero;
    const std::string pid_text = std::to_string(l.src.merged_pid);
    for (auto& e : l.doc.find("traceEvents")->items) {
      e.find("pid")->text = pid_text;
      if (json* ts = e.find("ts")) ts->text = us_text(ts->number() + l.src.shift_us);
      out.text += first ? "\n" : ",\n";
      first = false;
      write_json(out.text, e);
    }
    out.events += l.src.events;
    out.sources.push_back(l.src);
  }
  json other;
  other.k = json::kind::object;
  other.members.emplace_back("kvactor_timeline_merged", json::of_number("1"));
  other.members.emplace_back("time_zero_system_us", json::of_number(us_text(zero)));
  json sources;
  sources.k = json::kind::array;
  for (const auto& s : out.sources) {
    json j;
    j.k = json::kind::object;
    j.members.emplace_back("file", json::of_string(s.path));
    j.members.emplace_back("process_name", json::of_string(s.process));
    j.members.emplace_back("pid", json::of_number(std::to_string(s.pid)));
    j.members.emplace_back("merged_pid", json::of_number(std::to_string(s.merged_pid)));
    j.members.emplace_back("shift_us", json::of_number(us_text(s.shift_us)));
    sources.items.push_back(std::move(j));
  }
  other.members.emplace_back("sources", std::move(sources));
  out.text += "\n],\"displayTimeUnit\":\"ms\",\"otherData\":";
  write_json(out.text, other);
  out.text += "}\n";
  return out;
}

}  // namespace kvactor::timeline_tool

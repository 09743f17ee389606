// Checks of a Chrome trace-event file as the timeline writes it and kvactor-timeline merges it
// (kvactor/detail/timeline.hpp): read, strictly parsed (tools/timeline/json.hpp), and its
// shape: every event an object with ph, pid and tid; the complete spans ("X") of one thread
// nest or are disjoint; every async begin ("b") has exactly one end ("e") under its id, no
// earlier than the begin. Thread-safety: test thread only.
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "json.hpp"

namespace kvactor::testing {

using timeline_tool::json;

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline const std::string& text_of(const json& e, const char* member) {
  static const std::string none;
  const json* v = e.find(member);
  return v && v->is(json::kind::string) ? v->text : none;
}

inline long double number_of(const json& e, const char* member) {
  const json* v = e.find(member);
  return v ? v->number() : -1;
}

/// The key argument of an event ("" without one).
inline std::string key_of(const json& e) {
  const json* a = e.find("args");
  return a ? text_of(*a, "key") : std::string{};
}

/// What is wrong with the trace's shape, or "" when nothing is.
inline std::string trace_problem(const json& doc) {
  if (!doc.is(json::kind::object)) return "not an object";
  const json* events = doc.find("traceEvents");
  if (!events || !events->is(json::kind::array)) return "no traceEvents array";
  // Per thread, spans as (begin, end) in nanoseconds (integers: the writer's three decimals).
  std::map<std::pair<std::string, std::string>, std::vector<std::pair<long long, long long>>> spans;
  std::map<std::tuple<std::string, std::string>, int> open;  // (pid, id) -> b minus e
  std::map<std::tuple<std::string, std::string>, long double> began;
  for (const auto& e : events->items) {
    if (!e.is(json::kind::object)) return "an event is not an object";
    const std::string ph = text_of(e, "ph");
    const json* pid = e.find("pid");
    const json* tid = e.find("tid");
    if (ph.empty() || !pid || !tid || !pid->is(json::kind::number) || !tid->is(json::kind::number))
      return "an event without ph, pid or tid";
    if (ph == "M") continue;
    if (!e.find("ts") || !e.find("ts")->is(json::kind::number)) return "an event without ts";
    const long double ts = number_of(e, "ts");
    if (ph == "X") {
      const json* dur = e.find("dur");
      if (!dur || !dur->is(json::kind::number) || dur->number() < 0) return "X without dur";
      const auto b = static_cast<long long>(ts * 1000 + 0.5L);
      const auto d = static_cast<long long>(dur->number() * 1000 + 0.5L);
      spans[{pid->text, tid->text}].emplace_back(b, b + d);
    } else if (ph == "b" || ph == "e") {
      const json* id2 = e.find("id2");
      const std::string id = id2 ? text_of(*id2, "local") : std::string{};
      if (id.empty()) return "async event without id2.local";
      auto k = std::make_tuple(pid->text, id);
      if (ph == "b") {
        if (open[k] != 0 || began.count(k)) return "id " + id + " begins twice";
        open[k] = 1;
        began[k] = ts;
      } else {
        if (open[k] != 1) return "id " + id + " ends without a begin";
        if (ts < began[k]) return "id " + id + " ends before it begins";
        open[k] = 0;
      }
    } else if (ph != "i") {
      return "unexpected ph " + ph;
    }
  }
  for (const auto& [k, n] : open)
    if (n != 0) return "id " + std::get<1>(k) + " never ends";
  for (auto& [thread, list] : spans) {
    // Sorted by begin, longest first: each span must end within every span still open.
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    std::vector<long long> ends;
    for (const auto& [b, e] : list) {
      while (!ends.empty() && ends.back() <= b)
        ends.pop_back();
      if (!ends.empty() && e > ends.back())
        return "spans of thread " + thread.second + " overlap without nesting";
      ends.push_back(e);
    }
  }
  return {};
}

/// Events of the trace with this ph, category and name (and key, unless empty).
inline std::vector<const json*> events_named(const json& doc, const std::string& ph,
                                             const std::string& cat, const std::string& name,
                                             const std::string& key = {}) {
  std::vector<const json*> out;
  const json* events = doc.find("traceEvents");
  if (!events) return out;
  for (const auto& e : events->items)
    if (text_of(e, "ph") == ph && text_of(e, "cat") == cat && text_of(e, "name") == name &&
        (key.empty() || key_of(e) == key))
      out.push_back(&e);
  return out;
}

/// The process name its metadata gives ("" without one).
inline std::string process_name_of(const json& doc) {
  const json* events = doc.find("traceEvents");
  if (!events) return {};
  for (const auto& e : events->items)
    if (text_of(e, "ph") == "M" && text_of(e, "name") == "process_name")
      if (const json* a = e.find("args")) return text_of(*a, "name");
  return {};
}

}  // namespace kvactor::testing

#include "enginecore/structured/schema_compiler.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace k2::structured {

namespace {

using Json = nlohmann::ordered_json;

// Keywords whose meaning this compiler does not enforce; accepting them silently would let the
// model produce output that violates the schema, so they are an error instead.
const std::set<std::string, std::less<>> kRejectedKeywords = {
    "pattern",      "patternProperties", "not",          "if",           "then",
    "else",         "dependentRequired", "dependentSchemas", "dependencies", "contains",
    "minContains",  "maxContains",       "propertyNames", "minProperties", "maxProperties",
    "multipleOf",   "$dynamicRef",       "$recursiveRef"};

// Keywords that only annotate; a node made of these (plus a combinator) constrains nothing
// beyond its combinator. minimum/maximum are listed because ranges are not enforced.
const std::set<std::string, std::less<>> kAnnotations = {
    "title",    "description", "default",  "examples", "$schema", "$id",     "$comment",
    "$defs",    "definitions", "format",   "deprecated", "readOnly", "writeOnly", "nullable",
    "minimum",  "maximum",     "exclusiveMinimum", "exclusiveMaximum", "$anchor", "contentMediaType",
    "contentEncoding"};

std::string child(const std::string& path, const std::string& key) {
  std::string escaped;
  for (char c : key) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return path + "/" + escaped;
}

std::string dump(const Json& v) { return v.dump(-1, ' ', false, Json::error_handler_t::replace); }

Status bad(const std::string& path, const std::string& what) {
  return invalid_argument("JSON schema at " + path + ": " + what);
}

Result<std::optional<int64_t>> count_keyword(const Json& s, const char* key, const std::string& path,
                                             int limit) {
  auto it = s.find(key);
  if (it == s.end()) return std::optional<int64_t>{};
  if (!it->is_number()) return bad(path, std::string("'") + key + "' must be a non-negative integer");
  double v = it->get<double>();
  if (!(v >= 0) || std::floor(v) != v) return bad(path, std::string("'") + key + "' must be a non-negative integer");
  if (v > limit) {
    return Status(Code::kUnimplemented, "JSON schema at " + path + ": '" + key + "' = " + dump(*it) +
                                            " exceeds the supported bound " + std::to_string(limit));
  }
  return std::optional<int64_t>{static_cast<int64_t>(v)};
}

// Shallow merge of a combinator branch into its parent, so {"type":"object","anyOf":[{...}]}
// constrains each branch by the parent's keywords.
Json merge_branch(const Json& base, const Json& branch) {
  Json merged = base;
  for (auto it = branch.begin(); it != branch.end(); ++it) {
    const std::string& k = it.key();
    if (k == "required" && merged.contains(k) && merged[k].is_array() && it->is_array()) {
      for (const Json& name : *it) {
        if (std::find(merged[k].begin(), merged[k].end(), name) == merged[k].end()) merged[k].push_back(name);
      }
    } else if (k == "properties" && merged.contains(k) && merged[k].is_object() && it->is_object()) {
      for (auto p = it->begin(); p != it->end(); ++p) merged[k][p.key()] = p.value();
    } else {
      merged[k] = *it;
    }
  }
  return merged;
}

}  // namespace

SchemaCompiler::SchemaCompiler(const Json& root, const GrammarLimits& limits)
    : root_(root), limits_(limits), nfa_(limits.max_nfa_states) {}

Result<Automaton> SchemaCompiler::compile_schema() {
  rules_.push_back({{}, kDeadState, "#"});
  refs_["#"] = 0;
  K2_ASSIGN_OR_RETURN(Frag body, value(root_, "#", 0));
  rules_[0].nfa = body;
  return finish();
}

Result<Automaton> SchemaCompiler::compile_any_object() {
  rules_.push_back({{}, kDeadState, "#"});
  rules_[0].nfa = any_object_body();
  return finish();
}

Result<Automaton> SchemaCompiler::finish() {
  if (nfa_.overflowed()) return out_of_range("JSON schema too large: more than " +
                                             std::to_string(limits_.max_nfa_states) + " NFA states");
  AutomatonLimits al{limits_.max_dfa_states, limits_.max_compile_work};
  return Automaton::build(nfa_, rules_, 0, al);
}

Result<Frag> SchemaCompiler::value(const Json& s, const std::string& path, int depth) {
  if (depth > limits_.max_schema_depth) {
    return out_of_range("JSON schema at " + path + ": nested deeper than " +
                        std::to_string(limits_.max_schema_depth) + " levels");
  }
  if (nfa_.overflowed()) {
    return out_of_range("JSON schema too large at " + path + ": more than " +
                        std::to_string(limits_.max_nfa_states) + " NFA states");
  }
  if (s.is_boolean()) {
    if (!s.get<bool>()) return nfa_.nothing();
    return nfa_.call(any_rule());
  }
  if (!s.is_object()) return bad(path, "a schema must be an object or a boolean, got " + dump(s));
  return value_object(s, path, depth);
}

Result<Frag> SchemaCompiler::value_object(const Json& s, const std::string& path, int depth) {
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (kRejectedKeywords.count(it.key())) {
      return Status(Code::kUnimplemented, "JSON schema at " + path + ": keyword '" + it.key() + "' is not supported");
    }
  }
  if (s.contains("uniqueItems") && s["uniqueItems"] == true) {
    return Status(Code::kUnimplemented, "JSON schema at " + path + ": 'uniqueItems': true is not supported");
  }
  for (const char* k : {"unevaluatedItems", "unevaluatedProperties", "additionalItems"}) {
    if (s.contains(k) && !s[k].is_boolean() && !s[k].is_object()) return bad(path, std::string("'") + k + "' must be a schema");
  }
  if (auto it = s.find("$ref"); it != s.end()) {
    if (!it->is_string()) return bad(path, "'$ref' must be a string");
    K2_ASSIGN_OR_RETURN(uint32_t rule, ref_rule(it->get<std::string>(), child(path, "$ref"), depth + 1));
    return nfa_.call(rule);
  }
  if (s.contains("allOf")) return combinator(s, "allOf", path, depth);
  if (s.contains("anyOf")) return combinator(s, "anyOf", path, depth);
  if (s.contains("oneOf")) return combinator(s, "oneOf", path, depth);  // exclusivity not enforced
  if (auto it = s.find("const"); it != s.end()) return literal(*it, child(path, "const"), depth + 1);
  if (auto it = s.find("enum"); it != s.end()) return enumeration(*it, child(path, "enum"), depth + 1);

  std::vector<std::string> types;
  if (auto it = s.find("type"); it != s.end()) {
    if (it->is_string()) {
      types.push_back(it->get<std::string>());
    } else if (it->is_array() && !it->empty()) {
      for (const Json& t : *it) {
        if (!t.is_string()) return bad(child(path, "type"), "type names must be strings");
        types.push_back(t.get<std::string>());
      }
    } else {
      return bad(child(path, "type"), "'type' must be a string or a non-empty array of strings");
    }
  } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
    types.push_back("object");
  } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems")) {
    types.push_back("array");
  } else if (s.contains("minLength") || s.contains("maxLength")) {
    types.push_back("string");
  } else {
    return nfa_.call(any_rule());
  }
  std::vector<Frag> alts;
  for (const std::string& t : types) {
    K2_ASSIGN_OR_RETURN(Frag f, typed(t, s, path, depth));
    alts.push_back(f);
  }
  return alts.size() == 1 ? alts[0] : nfa_.alt(alts);
}

Result<Frag> SchemaCompiler::combinator(const Json& s, const char* key, const std::string& path, int depth) {
  const Json& list = s[key];
  std::string kpath = child(path, key);
  if (!list.is_array() || list.empty()) return bad(kpath, std::string("'") + key + "' must be a non-empty array");
  if (std::string_view(key) == "allOf" && list.size() != 1) {
    return Status(Code::kUnimplemented, "JSON schema at " + kpath + ": 'allOf' with more than one schema is not supported");
  }
  Json base = s;
  base.erase(key);
  bool constrained = false;
  for (auto it = base.begin(); it != base.end(); ++it) {
    if (!kAnnotations.count(it.key())) constrained = true;
  }
  std::vector<Frag> alts;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string bpath = child(kpath, std::to_string(i));
    const Json& branch = list[i];
    if (!branch.is_object() && !branch.is_boolean()) return bad(bpath, "a schema must be an object or a boolean");
    Frag f;
    if (!constrained || (branch.is_boolean() && !branch.get<bool>())) {
      K2_ASSIGN_OR_RETURN(f, value(branch, bpath, depth + 1));
    } else if (branch.is_boolean()) {
      K2_ASSIGN_OR_RETURN(f, value(base, bpath, depth + 1));
    } else {
      K2_ASSIGN_OR_RETURN(f, value(merge_branch(base, branch), bpath, depth + 1));
    }
    alts.push_back(f);
  }
  return alts.size() == 1 ? alts[0] : nfa_.alt(alts);
}

Result<Frag> SchemaCompiler::typed(const std::string& type, const Json& s, const std::string& path, int depth) {
  if (type == "object") return object(s, path, depth);
  if (type == "array") return array(s, path, depth);
  if (type == "string") return string(s, path);
  if (type == "integer") return number(true);
  if (type == "number") return number(false);
  if (type == "boolean") return nfa_.alt({nfa_.literal("true"), nfa_.literal("false")});
  if (type == "null") return nfa_.literal("null");
  return bad(child(path, "type"), "unknown type '" + type + "'");
}

Result<uint32_t> SchemaCompiler::ref_rule(const std::string& ref, const std::string& path, int depth) {
  if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
  if (ref.empty() || ref[0] != '#') {
    return Status(Code::kUnimplemented, "JSON schema at " + path + ": only local '$ref' (\"#/...\") is supported, got '" + ref + "'");
  }
  if (rules_.size() >= limits_.max_rules) {
    return out_of_range("JSON schema at " + path + ": more than " + std::to_string(limits_.max_rules) + " $ref targets");
  }
  const Json* target = nullptr;
  try {
    target = &root_.at(Json::json_pointer(ref.substr(1)));
  } catch (const nlohmann::json::exception&) {
    return bad(path, "'$ref' target '" + ref + "' not found");
  }
  uint32_t id = static_cast<uint32_t>(rules_.size());
  rules_.push_back({{}, kDeadState, ref});
  refs_[ref] = id;
  K2_ASSIGN_OR_RETURN(Frag body, value(*target, ref, depth));
  rules_[id].nfa = body;
  return id;
}

Frag SchemaCompiler::ws() {
  // A chain of at most max_whitespace optional characters.
  uint32_t start = nfa_.add_state();
  uint32_t end = nfa_.add_state();
  uint32_t cur = start;
  nfa_.add_eps(cur, end);
  for (int i = 0; i < limits_.max_whitespace; ++i) {
    uint32_t next = nfa_.add_state();
    for (uint8_t c : {' ', '\t', '\n'}) nfa_.add_bytes(cur, c, c, next);
    nfa_.add_eps(next, end);
    cur = next;
  }
  return {start, end};
}

Frag SchemaCompiler::string_char() {
  Nfa& n = nfa_;
  Frag f{n.add_state(), n.add_state()};
  auto chain = [&](std::initializer_list<std::pair<uint8_t, uint8_t>> ranges) {
    uint32_t cur = f.start;
    size_t i = 0;
    for (auto [lo, hi] : ranges) {
      uint32_t next = ++i == ranges.size() ? f.end : n.add_state();
      n.add_bytes(cur, lo, hi, next);
      cur = next;
    }
  };
  chain({{0x20, 0x21}});
  chain({{0x23, 0x5B}});
  chain({{0x5D, 0x7F}});
  chain({{0xC2, 0xDF}, {0x80, 0xBF}});
  chain({{0xE0, 0xE0}, {0xA0, 0xBF}, {0x80, 0xBF}});
  chain({{0xE1, 0xEC}, {0x80, 0xBF}, {0x80, 0xBF}});
  chain({{0xED, 0xED}, {0x80, 0x9F}, {0x80, 0xBF}});
  chain({{0xEE, 0xEF}, {0x80, 0xBF}, {0x80, 0xBF}});
  chain({{0xF0, 0xF0}, {0x90, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}});
  chain({{0xF1, 0xF3}, {0x80, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}});
  chain({{0xF4, 0xF4}, {0x80, 0x8F}, {0x80, 0xBF}, {0x80, 0xBF}});
  uint32_t esc = n.add_state();
  n.add_bytes(f.start, '\\', '\\', esc);
  for (char c : std::string_view("\"\\/bfnrt")) n.add_bytes(esc, static_cast<uint8_t>(c), static_cast<uint8_t>(c), f.end);
  uint32_t cur = n.add_state();
  n.add_bytes(esc, 'u', 'u', cur);
  for (int i = 0; i < 4; ++i) {
    uint32_t next = i == 3 ? f.end : n.add_state();
    n.add_bytes(cur, '0', '9', next);
    n.add_bytes(cur, 'a', 'f', next);
    n.add_bytes(cur, 'A', 'F', next);
    cur = next;
  }
  return f;
}

Frag SchemaCompiler::any_string() {
  Frag body = nfa_.star(string_char());
  return nfa_.seq(nfa_.seq(nfa_.literal("\""), body), nfa_.literal("\""));
}

Frag SchemaCompiler::digits() {
  Frag one = nfa_.byte_range('0', '9');
  return nfa_.star(one);
}

Frag SchemaCompiler::number(bool integer) {
  Nfa& n = nfa_;
  Frag sign = n.optional(n.literal("-"));
  Frag int_part = n.alt({n.literal("0"), n.seq(n.byte_range('1', '9'), digits())});
  Frag f = n.seq(sign, int_part);
  if (integer) return f;
  Frag frac = n.optional(n.seq(n.seq(n.literal("."), n.byte_range('0', '9')), digits()));
  Frag exp_sign = n.optional(n.alt({n.literal("+"), n.literal("-")}));
  Frag exp = n.optional(n.seq(n.seq(n.seq(n.alt({n.literal("e"), n.literal("E")}), exp_sign),
                                    n.byte_range('0', '9')), digits()));
  return n.seq(n.seq(f, frac), exp);
}

Result<Frag> SchemaCompiler::repeat(const std::function<Result<Frag>()>& make, int64_t min,
                                    std::optional<int64_t> max) {
  Frag f = nfa_.empty();
  for (int64_t i = 0; i < min; ++i) {
    K2_ASSIGN_OR_RETURN(Frag x, make());
    f = nfa_.seq(f, x);
  }
  if (!max) {
    K2_ASSIGN_OR_RETURN(Frag x, make());
    return nfa_.seq(f, nfa_.star(x));
  }
  // Nested optionals (x(x(x)?)?)? stay deterministic, unlike x?x?x?.
  Frag tail = nfa_.empty();
  for (int64_t i = min; i < *max; ++i) {
    K2_ASSIGN_OR_RETURN(Frag x, make());
    tail = nfa_.optional(nfa_.seq(x, tail));
    if (nfa_.overflowed()) break;
  }
  return nfa_.seq(f, tail);
}

Result<Frag> SchemaCompiler::string(const Json& s, const std::string& path) {
  K2_ASSIGN_OR_RETURN(auto min, count_keyword(s, "minLength", path, limits_.max_unrolled_repeat));
  K2_ASSIGN_OR_RETURN(auto max, count_keyword(s, "maxLength", path, limits_.max_unrolled_repeat));
  if (min && max && *min > *max) return bad(path, "minLength is greater than maxLength");
  K2_ASSIGN_OR_RETURN(Frag body, repeat([&]() -> Result<Frag> { return string_char(); }, min.value_or(0), max));
  return nfa_.seq(nfa_.seq(nfa_.literal("\""), body), nfa_.literal("\""));
}

Result<Frag> SchemaCompiler::enumeration(const Json& values, const std::string& path, int depth) {
  if (!values.is_array() || values.empty()) return bad(path, "'enum' must be a non-empty array");
  if (values.size() > limits_.max_enum_values) {
    return out_of_range("JSON schema at " + path + ": more than " + std::to_string(limits_.max_enum_values) +
                        " enum values");
  }
  std::vector<Frag> alts;
  for (size_t i = 0; i < values.size(); ++i) {
    K2_ASSIGN_OR_RETURN(Frag f, literal(values[i], child(path, std::to_string(i)), depth));
    alts.push_back(f);
  }
  return alts.size() == 1 ? alts[0] : nfa_.alt(alts);
}

Result<Frag> SchemaCompiler::literal(const Json& v, const std::string& path, int depth) {
  if (depth > limits_.max_schema_depth) return out_of_range("JSON schema at " + path + ": value nested too deep");
  Nfa& n = nfa_;
  if (v.is_array()) {
    Frag f = n.seq(n.literal("["), ws());
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) f = n.seq(n.seq(n.seq(f, ws()), n.literal(",")), ws());
      K2_ASSIGN_OR_RETURN(Frag x, literal(v[i], path, depth + 1));
      f = n.seq(f, x);
    }
    if (!v.empty()) f = n.seq(f, ws());
    return n.seq(f, n.literal("]"));
  }
  if (v.is_object()) {
    Frag f = n.seq(n.literal("{"), ws());
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) f = n.seq(n.seq(n.seq(f, ws()), n.literal(",")), ws());
      first = false;
      f = n.seq(n.seq(n.seq(n.seq(f, n.literal(dump(Json(it.key())))), ws()), n.literal(":")), ws());
      K2_ASSIGN_OR_RETURN(Frag x, literal(it.value(), path, depth + 1));
      f = n.seq(f, x);
    }
    if (!v.empty()) f = n.seq(f, ws());
    return n.seq(f, n.literal("}"));
  }
  if (v.is_number_float() && !std::isfinite(v.get<double>())) return bad(path, "non-finite number");
  return n.literal(dump(v));
}

}  // namespace k2::structured

namespace k2::structured {

// Members are generated in schema order. Two chains of states track whether a member was
// already written (the next one needs a comma); each value NFA is built once and shared.
Result<Frag> SchemaCompiler::object(const Json& s, const std::string& path, int depth) {
  Nfa& n = nfa_;
  struct Member {
    std::string name;
    const Json* schema;
    bool required;
  };
  std::vector<Member> members;
  static const Json kAny = true;
  const Json* additional = nullptr;
  for (const char* key : {"additionalProperties", "unevaluatedProperties"}) {
    auto it = s.find(key);
    if (it == s.end()) continue;
    if (!it->is_boolean() && !it->is_object()) return bad(child(path, key), "must be a boolean or a schema");
    if (!(it->is_boolean() && !it->get<bool>())) additional = &*it;
    break;
  }
  std::set<std::string> required;
  if (auto it = s.find("required"); it != s.end()) {
    if (!it->is_array()) return bad(child(path, "required"), "must be an array of strings");
    for (const Json& r : *it) {
      if (!r.is_string()) return bad(child(path, "required"), "must be an array of strings");
      required.insert(r.get<std::string>());
    }
  }
  if (auto it = s.find("properties"); it != s.end()) {
    if (!it->is_object()) return bad(child(path, "properties"), "must be an object");
    for (auto p = it->begin(); p != it->end(); ++p) {
      members.push_back({p.key(), &p.value(), required.count(p.key()) > 0});
    }
  }
  for (const std::string& r : required) {
    bool declared = std::any_of(members.begin(), members.end(), [&](const Member& m) { return m.name == r; });
    if (declared) continue;
    if (!additional) return bad(child(path, "required"), "required property '" + r + "' is not in 'properties'");
    members.push_back({r, additional, true});
  }

  Frag whole{n.add_state(), n.add_state()};
  Frag open = n.seq(n.literal("{"), ws());
  n.add_eps(whole.start, open.start);
  uint32_t none = open.end;
  uint32_t some = n.add_state();
  // One key literal per member, entered directly (first member) or after a comma; sharing
  // it lets both paths meet in one DFA state.
  auto member_prefix = [&](uint32_t from_none, uint32_t from_some, Frag key, uint32_t value_start) {
    n.add_eps(from_none, key.start);
    Frag comma = n.seq(n.seq(ws(), n.literal(",")), ws());
    n.add_eps(from_some, comma.start);
    n.add_eps(comma.end, key.start);
    Frag colon = n.seq(n.seq(ws(), n.literal(":")), ws());
    n.add_eps(key.end, colon.start);
    n.add_eps(colon.end, value_start);
  };
  for (const Member& m : members) {
    std::string mpath = child(child(path, "properties"), m.name);
    K2_ASSIGN_OR_RETURN(Frag v, value(*m.schema, mpath, depth + 1));
    std::string key = dump(Json(m.name));
    member_prefix(none, some, n.literal(key), v.start);
    uint32_t next_none = n.add_state();
    uint32_t next_some = n.add_state();
    n.add_eps(v.end, next_some);
    if (!m.required) {
      n.add_eps(none, next_none);
      n.add_eps(some, next_some);
    }
    none = next_none;
    some = next_some;
  }
  if (additional) {
    K2_ASSIGN_OR_RETURN(Frag v, value(additional->is_boolean() ? kAny : *additional,
                                      child(path, "additionalProperties"), depth + 1));
    member_prefix(none, some, any_string(), v.start);
    n.add_eps(v.end, some);
  }
  Frag close_none = n.literal("}");
  n.add_eps(none, close_none.start);
  n.add_eps(close_none.end, whole.end);
  Frag close_some = n.seq(ws(), n.literal("}"));
  n.add_eps(some, close_some.start);
  n.add_eps(close_some.end, whole.end);
  return whole;
}

Result<Frag> SchemaCompiler::array(const Json& s, const std::string& path, int depth) {
  Nfa& n = nfa_;
  static const Json kAny = true;
  static const Json kNone = false;
  const Json* prefix = nullptr;
  const char* prefix_key = "prefixItems";
  const Json* extra = &kAny;
  std::string extra_path = child(path, "items");
  if (auto it = s.find("prefixItems"); it != s.end()) {
    if (!it->is_array()) return bad(child(path, "prefixItems"), "must be an array of schemas");
    prefix = &*it;
    extra = &kNone;
  }
  if (auto it = s.find("items"); it != s.end()) {
    if (it->is_array()) {  // draft 4-7 tuple form
      prefix = &*it;
      prefix_key = "items";
      extra = &kNone;
      extra_path = child(path, "additionalItems");
      if (auto a = s.find("additionalItems"); a != s.end()) extra = &*a;
    } else {
      extra = &*it;
    }
  } else if (auto u = s.find("unevaluatedItems"); u != s.end() && prefix) {
    extra = &*u;
  }
  if (!extra->is_boolean() && !extra->is_object()) return bad(extra_path, "must be a boolean or a schema");
  const bool extra_allowed = !(extra->is_boolean() && !extra->get<bool>());
  const int64_t k = prefix ? static_cast<int64_t>(prefix->size()) : 0;
  K2_ASSIGN_OR_RETURN(auto min_opt, count_keyword(s, "minItems", path, limits_.max_unrolled_repeat));
  K2_ASSIGN_OR_RETURN(auto max, count_keyword(s, "maxItems", path, limits_.max_unrolled_repeat));
  int64_t min = min_opt.value_or(0);
  if (!extra_allowed) max = std::min<int64_t>(max.value_or(k), k);
  if (max && min > *max) return bad(path, "minItems is greater than the number of items allowed");

  // Positions 0..unrolled are explicit states; without a maximum the last one loops.
  const int64_t unrolled = max ? *max : std::max<int64_t>({min, k, 1});
  Frag whole{n.add_state(), n.add_state()};
  Frag open = n.seq(n.literal("["), ws());
  n.add_eps(whole.start, open.start);
  uint32_t pos = open.end;
  // An items schema used at several positions becomes a rule called at each, instead of one
  // inlined copy per position (minItems: 1 alone would double a tool-call grammar).
  const int64_t extra_uses = std::max<int64_t>(unrolled - k, 0) + (max ? 0 : 1);
  std::optional<uint32_t> extra_rule;
  auto extra_value = [&]() -> Result<Frag> {
    if (extra_uses < 2 || extra->is_boolean()) return value(*extra, extra_path, depth + 1);
    if (!extra_rule) {
      if (rules_.size() >= limits_.max_rules) {
        return out_of_range("JSON schema at " + path + ": more than " + std::to_string(limits_.max_rules) + " rules");
      }
      extra_rule = static_cast<uint32_t>(rules_.size());
      rules_.push_back({{}, kDeadState, extra_path});
      K2_ASSIGN_OR_RETURN(Frag body, value(*extra, extra_path, depth + 1));
      rules_[*extra_rule].nfa = body;
    }
    return n.call(*extra_rule);
  };
  auto element = [&](int64_t i) -> Result<Frag> {
    Frag v;
    if (i < k) {
      K2_ASSIGN_OR_RETURN(v, value((*prefix)[static_cast<size_t>(i)], child(child(path, prefix_key), std::to_string(i)),
                                   depth + 1));
    } else {
      K2_ASSIGN_OR_RETURN(v, extra_value());
    }
    if (i == 0) return v;
    return n.seq(n.seq(n.seq(ws(), n.literal(",")), ws()), v);
  };
  for (int64_t i = 0; i <= unrolled; ++i) {
    if (i >= min) {
      Frag close = i == 0 ? n.literal("]") : n.seq(ws(), n.literal("]"));
      n.add_eps(pos, close.start);
      n.add_eps(close.end, whole.end);
    }
    if (i == unrolled) break;
    K2_ASSIGN_OR_RETURN(Frag e, element(i));
    n.add_eps(pos, e.start);
    pos = e.end;
    if (n.overflowed()) return out_of_range("JSON schema too large at " + path);
  }
  if (!max) {
    K2_ASSIGN_OR_RETURN(Frag e, element(unrolled));
    n.add_eps(pos, e.start);
    n.add_eps(e.end, pos);
  }
  return whole;
}

// The shared "any JSON value" rule; nested values call it again, so its depth is the
// matcher's nesting limit.
uint32_t SchemaCompiler::any_rule() {
  if (any_rule_) return *any_rule_;
  uint32_t id = static_cast<uint32_t>(rules_.size());
  rules_.push_back({{}, kDeadState, "(any JSON value)"});
  any_rule_ = id;
  Nfa& n = nfa_;
  Frag body = n.alt({any_object_body(), any_array_body(), any_string(), number(false), n.literal("true"),
                     n.literal("false"), n.literal("null")});
  rules_[id].nfa = body;
  return id;
}

Frag SchemaCompiler::any_object_body() {
  Nfa& n = nfa_;
  uint32_t any = any_rule();
  auto member = [&]() { return n.seq(n.seq(n.seq(n.seq(any_string(), ws()), n.literal(":")), ws()), n.call(any)); };
  Frag more = n.star(n.seq(n.seq(n.seq(ws(), n.literal(",")), ws()), member()));
  Frag members = n.seq(n.seq(n.seq(member(), more), ws()), n.literal("}"));
  return n.seq(n.seq(n.literal("{"), ws()), n.alt({n.literal("}"), members}));
}

Frag SchemaCompiler::any_array_body() {
  Nfa& n = nfa_;
  uint32_t any = any_rule();
  Frag more = n.star(n.seq(n.seq(n.seq(ws(), n.literal(",")), ws()), n.call(any)));
  Frag items = n.seq(n.seq(n.seq(n.call(any), more), ws()), n.literal("]"));
  return n.seq(n.seq(n.literal("["), ws()), n.alt({n.literal("]"), items}));
}

}  // namespace k2::structured

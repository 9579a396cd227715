// The engine against Python jinja2: testdata/engine_cases.jsonl holds templates rendered
// by jinja2 under Hugging Face's environment (make_engine_cases.py regenerates it). Plus
// the limits, the sandbox and concurrent rendering.
#include <atomic>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/chat_template/template.h"

namespace k2::jinja {
namespace {

using json = nlohmann::ordered_json;

Result<std::string> render(std::string_view source, const json& context = json::object(), const RenderLimits& limits = {}) {
  K2_ASSIGN_OR_RETURN(Template t, Template::parse(source));
  K2_ASSIGN_OR_RETURN(Value vars, from_json(context));
  return t.render(vars, limits);
}

TEST(Engine, MatchesPythonJinja2) {
  std::ifstream in(std::string(K2_CHAT_TEMPLATE_TESTDATA) + "/engine_cases.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    const json r = json::parse(line);
    const std::string tpl = r["template"].get<std::string>();
    auto out = render(tpl, r["context"]);
    if (r.contains("error")) {
      ASSERT_FALSE(out.ok()) << tpl << " rendered " << *out << " but jinja2 raised " << r["error"];
      EXPECT_NE(out.status().message().find(r["error"].get<std::string>()), std::string::npos)
          << tpl << ": " << out.status().message();
    } else {
      ASSERT_TRUE(out.ok()) << tpl << ": " << out.status().to_string();
      EXPECT_EQ(*out, r["rendered"].get<std::string>()) << tpl;
    }
    ++cases;
  }
  EXPECT_GE(cases, 80);
}

TEST(Engine, ErrorsCarryLineNumbers) {
  auto out = render("line one\n{{ 1 + }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("line 2"), std::string::npos) << out.status().message();
}

TEST(Engine, UndefinedPrintsEmptyButFailsWhenUsed) {
  EXPECT_EQ(*render("[{{ nope }}][{{ nope | length }}][{% for x in nope %}x{% endfor %}]"), "[][0][]");
  auto out = render("{{ nope.attr }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("'nope' is undefined"), std::string::npos);
  EXPECT_FALSE(render("{{ nope + 1 }}").ok());
  EXPECT_FALSE(render("{{ nope() }}").ok());
}

TEST(Engine, SandboxRefusesMutationAndInternals) {
  auto out = render("{% set l = [1] %}{{ l.append(2) }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("SecurityError"), std::string::npos);
  EXPECT_FALSE(render("{{ {'a': 1}.update({'b': 2}) }}").ok());
  EXPECT_EQ(*render("{{ ''.__class__ }}"), "");
  EXPECT_FALSE(render("{{ ''.__class__.__mro__ }}").ok());
}

TEST(Engine, LoopIterationLimit) {
  RenderLimits limits;
  limits.max_loop_iterations = 1000;
  auto out = render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", json::object(), limits);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("iterations"), std::string::npos);
}

TEST(Engine, OutputSizeLimit) {
  RenderLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_FALSE(render("{{ 'x' * 5000 }}", json::object(), limits).ok());
  EXPECT_FALSE(render("{% for i in range(5000) %}x{% endfor %}", json::object(), limits).ok());
  EXPECT_FALSE(render("{{ 'ab' * 9223372036854775807 }}").ok());
  // Shared structure doubles per step: its repr would be astronomically large.
  auto out = render("{% set ns = namespace(x=[1]) %}{% for i in range(80) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
                    "{{ ns.x }}", json::object(), limits);
  EXPECT_FALSE(out.ok());
}

TEST(Engine, RecursionIsBounded) {
  auto out = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("RecursionError"), std::string::npos);
  // Exponential fan-out hits the step budget instead of running for ever.
  RenderLimits limits;
  limits.max_steps = 100000;
  out = render("{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
               json::object(), limits);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("steps"), std::string::npos);
}

TEST(Engine, DeepNestingIsASyntaxErrorNotACrash) {
  std::string deep(5000, '(');
  EXPECT_FALSE(render("{{ " + deep + "1" + std::string(5000, ')') + " }}").ok());
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_FALSE(render(chain + " }}").ok());
  std::string ifs;
  for (int i = 0; i < 2000; ++i) ifs += "{% if true %}";
  EXPECT_FALSE(render(ifs).ok());
}

TEST(Engine, SelfReferencingNamespaceDoesNotHang) {
  auto out = render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_FALSE(render("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns | tojson }}").ok());
  // A loop object kept in a namespace closes a cycle through the loop's scope too; the
  // sanitizer build checks that neither cycle leaks.
  EXPECT_EQ(*render("{% set ns = namespace() %}{% for i in [1] %}{% set ns.l = loop %}{% endfor %}{{ ns.l.index }}"), "1");
}

TEST(Engine, ConcurrentRendersShareOneTemplate) {
  auto t = Template::parse("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{{ tools | tojson }}");
  ASSERT_TRUE(t.ok());
  const json ctx = json::parse(R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                   "tools": [{"a": 1.5}]})");
  const Value vars = *from_json(ctx);
  const std::string expected = "user:hi;assistant:yo;[{\"a\": 1.5}]";
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k) {
        auto out = t->render(vars);
        if (!out.ok() || *out != expected) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Engine, StrftimeNowFormatsTheCurrentTime) {
  auto out = render("{{ strftime_now('%Y-%m-%d') }}");
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 10u);
  EXPECT_EQ((*out)[4], '-');
  EXPECT_EQ((*out)[7], '-');
}

TEST(Engine, KimiInstructTemplateKeepsCrlfSemantics) {
  // CRLF inside data that is not stripped becomes "\n", as jinja2 normalises newlines.
  EXPECT_EQ(*render("a\r\n{{ 'b' }}\r\nc"), "a\nb\nc");
  EXPECT_EQ(*render("a\r\n"), "a");  // one trailing newline is dropped
}

}  // namespace
}  // namespace k2::jinja

#include "frontend/chat_template/template.h"

#include "frontend/chat_template/parser.h"

namespace k2::jinja {

Result<Template> Template::parse(std::string_view source, const LexerOptions& options) {
  K2_ASSIGN_OR_RETURN(Body body, parse_template(source, options));
  return Template(std::make_shared<const Body>(std::move(body)));
}

Result<std::string> Template::render(const Value& variables, const RenderLimits& limits) const {
  if (!variables.is_dict()) return invalid_argument("template variables must be a mapping");
  auto globals = std::make_shared<Scope>();
  for (const auto& [k, v] : variables.as_dict().entries) {
    if (k.is_string()) globals->set(k.as_string(), v);
  }
  Interpreter interp(limits);
  return interp.render(*body_, std::move(globals));
}

}  // namespace k2::jinja

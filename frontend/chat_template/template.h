// A parsed Jinja template, rendered with jinja2 semantics under Hugging Face's chat
// environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// `{% generation %}`).
//
// A Template owns its immutable syntax tree; parse once, then render from any number of
// threads at once (each render builds its own interpreter state).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "frontend/chat_template/ast.h"
#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/lexer.h"
#include "frontend/chat_template/value.h"

namespace k2::jinja {

class Template {
 public:
  static Result<Template> parse(std::string_view source, const LexerOptions& options = {});

  // `variables` must be a dict; its entries are the render's global variables.
  Result<std::string> render(const Value& variables, const RenderLimits& limits = {}) const;

 private:
  explicit Template(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;
};

}  // namespace k2::jinja

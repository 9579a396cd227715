#include "frontend/chat_template/parser.h"

#include "frontend/chat_template/parser_impl.h"

namespace k2::jinja {

Result<Body> parse_template(std::string_view source, const LexerOptions& options) {
  K2_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source, options));
  parser_detail::Parser parser(std::move(tokens));
  return parser.parse();
}

}  // namespace k2::jinja

#include "multimodal/http_url.h"

#include <vector>

#include "multimodal/ascii.h"

namespace k2::mm {
namespace {

bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// A label that WHATWG URL parsers (and inet_aton) would read as a number.
bool is_numeric_label(std::string_view label) {
  if (label.empty()) return false;
  if (label.size() > 1 && label[0] == '0' && label[1] == 'x') {
    for (char c : label.substr(2)) {
      if (!is_hex_digit(c)) return false;
    }
    return true;
  }
  for (char c : label) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Status parse_host(std::string_view text, HttpUrl* url) {
  if (text.empty()) return invalid_argument("URL has no host");
  if (text.front() == '[') {
    if (text.back() != ']') return invalid_argument("URL: unterminated IPv6 literal");
    auto ip = parse_ipv6(text.substr(1, text.size() - 2));
    if (!ip.ok()) return invalid_argument("URL: bad IPv6 literal");
    url->ip = *ip;
    url->host = ip->to_string();
    return {};
  }
  std::string host;
  for (char c : text) {
    c = ascii_lower(c);
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
      return invalid_argument("URL: invalid character in host");
    }
    host.push_back(c);
  }
  if (host.back() == '.') host.pop_back();
  if (host.empty() || host.size() > 253) return invalid_argument("URL: bad host length");
  size_t last_dot = host.rfind('.');
  std::string_view last_label = std::string_view(host).substr(last_dot == std::string::npos ? 0 : last_dot + 1);
  if (is_numeric_label(last_label)) {
    auto ip = parse_ipv4(host);
    if (!ip.ok()) return invalid_argument("URL: host '" + host + "' is a non-canonical IPv4 address");
    url->ip = *ip;
  } else {
    for (size_t start = 0; start <= host.size();) {
      size_t dot = host.find('.', start);
      size_t len = (dot == std::string::npos ? host.size() : dot) - start;
      if (len == 0 || len > 63) return invalid_argument("URL: bad host label");
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  }
  url->host = std::move(host);
  return {};
}

Status parse_port(std::string_view text, HttpUrl* url) {
  if (text.empty() || text.size() > 5) return invalid_argument("URL: bad port");
  unsigned port = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid_argument("URL: bad port");
    port = port * 10 + unsigned(c - '0');
  }
  if (port == 0 || port > 65535) return invalid_argument("URL: port out of range");
  url->port = static_cast<uint16_t>(port);
  return {};
}

// Path and query: printable ASCII kept, non-ASCII percent-encoded, controls rejected.
Result<std::string> encode_target(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  if (text.empty() || text.front() != '/') out.push_back('/');
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == ' ') return invalid_argument("URL: whitespace or control character");
    if (c == '\\') return invalid_argument("URL: backslash");
    if (c >= 0x80) {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

// RFC 3986 section 5.2.4, on a path without query.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> segs;
  size_t start = 1;  // path begins with '/'
  bool trailing_slash = false;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    trailing_slash = false;
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      trailing_slash = true;
    } else if (seg == ".") {
      trailing_slash = true;
    } else {
      segs.push_back(seg);
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  std::string out;
  for (std::string_view s : segs) {
    out.push_back('/');
    out.append(s);
  }
  if (trailing_slash || out.empty()) out.push_back('/');
  return out;
}

}  // namespace

std::string HttpUrl::authority() const {
  const bool brackets = ip && ip->v6;
  std::string a;
  if (brackets) a.push_back('[');
  a.append(host);
  if (brackets) a.push_back(']');
  if (port != (https ? 443 : 80)) {
    a.push_back(':');
    a.append(std::to_string(port));
  }
  return a;
}

std::string HttpUrl::to_string() const { return std::string(https ? "https://" : "http://") + authority() + target; }

Result<HttpUrl> parse_http_url(std::string_view text) {
  HttpUrl url;
  if (starts_with_ci(text, "https://")) {
    url.https = true;
    url.port = 443;
    text.remove_prefix(8);
  } else if (starts_with_ci(text, "http://")) {
    text.remove_prefix(7);
  } else {
    return invalid_argument("only http:// and https:// URLs can be fetched");
  }
  if (size_t hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
  const size_t end = text.find_first_of("/?");
  std::string_view authority = text.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view() : text.substr(end);
  if (authority.find('@') != std::string_view::npos) return invalid_argument("URL: user info is not allowed");
  if (authority.find_first_of("\\%") != std::string_view::npos) return invalid_argument("URL: invalid character in host");
  std::string_view host = authority;
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    host = authority.substr(0, colon);
    K2_RETURN_IF_ERROR(parse_port(authority.substr(colon + 1), &url));
  }
  K2_RETURN_IF_ERROR(parse_host(host, &url));
  K2_ASSIGN_OR_RETURN(url.target, encode_target(rest));
  return url;
}

Result<HttpUrl> resolve_redirect(const HttpUrl& base, std::string_view location) {
  while (!location.empty() && (location.front() == ' ' || location.front() == '\t')) location.remove_prefix(1);
  while (!location.empty() && (location.back() == ' ' || location.back() == '\t')) location.remove_suffix(1);
  if (location.empty()) return invalid_argument("redirect without a location");
  if (starts_with_ci(location, "http://") || starts_with_ci(location, "https://")) return parse_http_url(location);
  if (location.size() >= 2 && location[0] == '/' && location[1] == '/') {
    return parse_http_url(std::string(base.https ? "https:" : "http:") + std::string(location));
  }
  // Any other scheme ("file:", "data:", "gopher:") is refused rather than resolved.
  const size_t colon = location.find(':');
  if (colon != std::string_view::npos && location.find_first_of("/?#") > colon) {
    return invalid_argument("redirect to a non-http(s) URL");
  }
  if (size_t hash = location.find('#'); hash != std::string_view::npos) location = location.substr(0, hash);
  std::string ref(location);
  if (ref.front() != '/' && ref.front() != '?') {
    std::string_view base_path = std::string_view(base.target).substr(0, base.target.find('?'));
    ref = std::string(base_path.substr(0, base_path.rfind('/') + 1)) + ref;
  } else if (ref.front() == '?') {
    ref = base.target.substr(0, base.target.find('?')) + ref;
  }
  const size_t q = ref.find('?');
  std::string path = remove_dot_segments(std::string_view(ref).substr(0, q));
  if (q != std::string::npos) path += ref.substr(q);
  return parse_http_url(std::string(base.https ? "https://" : "http://") + base.authority() + path);
}

}  // namespace k2::mm

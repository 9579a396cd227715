#include "multimodal/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

namespace k2::mm {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

struct V4Range {
  uint32_t base;
  int prefix;
  AddressClass cls;
};

// Special-purpose IPv4 ranges (IANA registry). Longer prefixes come first where they nest.
constexpr V4Range kV4Ranges[] = {
    {0x00000000u, 8, AddressClass::kUnspecified},  // 0.0.0.0/8 "this network"
    {0x0A000000u, 8, AddressClass::kPrivate},      // 10/8
    {0x64400000u, 10, AddressClass::kPrivate},     // 100.64/10 shared address space
    {0x7F000000u, 8, AddressClass::kLoopback},     // 127/8
    {0xA9FE0000u, 16, AddressClass::kLinkLocal},   // 169.254/16
    {0xAC100000u, 12, AddressClass::kPrivate},     // 172.16/12
    {0xC0000000u, 24, AddressClass::kReserved},    // 192.0.0/24 IETF protocol assignments
    {0xC0000200u, 24, AddressClass::kReserved},    // 192.0.2/24 TEST-NET-1
    {0xC0586300u, 24, AddressClass::kReserved},    // 192.88.99/24 6to4 relay anycast
    {0xC0A80000u, 16, AddressClass::kPrivate},     // 192.168/16
    {0xC6120000u, 15, AddressClass::kReserved},    // 198.18/15 benchmarking
    {0xC6336400u, 24, AddressClass::kReserved},    // 198.51.100/24 TEST-NET-2
    {0xCB007100u, 24, AddressClass::kReserved},    // 203.0.113/24 TEST-NET-3
    {0xE0000000u, 4, AddressClass::kMulticast},    // 224/4
    {0xF0000000u, 4, AddressClass::kReserved},     // 240/4 and 255.255.255.255
};

AddressClass classify_v4(uint32_t a) {
  for (const V4Range& r : kV4Ranges) {
    const uint32_t mask = r.prefix == 0 ? 0 : ~uint32_t{0} << (32 - r.prefix);
    if ((a & mask) == r.base) return r.cls;
  }
  return AddressClass::kPublic;
}

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

AddressClass classify_v6(const std::array<uint8_t, 16>& b) {
  const uint8_t* p = b.data();
  if (all_zero(p, 16)) return AddressClass::kUnspecified;
  if (all_zero(p, 15) && p[15] == 1) return AddressClass::kLoopback;
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but still routed by some stacks)
  if (all_zero(p, 10) && ((p[10] == 0xff && p[11] == 0xff) || (p[10] == 0 && p[11] == 0))) {
    return classify_v4(load_be32(p + 12));
  }
  // 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local-use NAT64
  if (p[0] == 0x00 && p[1] == 0x64 && p[2] == 0xff && p[3] == 0x9b) {
    if (all_zero(p + 4, 8)) return classify_v4(load_be32(p + 12));
    return AddressClass::kReserved;
  }
  if (p[0] == 0x20 && p[1] == 0x02) return classify_v4(load_be32(p + 2));  // 6to4
  if (p[0] == 0xff) return AddressClass::kMulticast;
  if (p[0] == 0xfe && (p[1] & 0xc0) == 0x80) return AddressClass::kLinkLocal;  // fe80::/10
  if (p[0] == 0xfe && (p[1] & 0xc0) == 0xc0) return AddressClass::kPrivate;    // fec0::/10 site-local
  if ((p[0] & 0xfe) == 0xfc) return AddressClass::kPrivate;                      // fc00::/7 ULA
  if (p[0] == 0x20 && p[1] == 0x01 && p[2] == 0x0d && p[3] == 0xb8) return AddressClass::kReserved;  // documentation
  if (p[0] == 0x01 && all_zero(p + 1, 7)) return AddressClass::kReserved;  // 100::/64 discard
  // Teredo (2001::/32) hides an obfuscated IPv4 address; refuse rather than decode it.
  if (p[0] == 0x20 && p[1] == 0x01 && p[2] == 0x00 && p[3] == 0x00) return AddressClass::kReserved;
  // Global unicast is 2000::/3; everything else is unassigned or special.
  if ((p[0] & 0xe0) != 0x20) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

}  // namespace

IpAddress IpAddress::v4_from(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf));
  return buf;
}

Result<IpAddress> parse_ipv4(std::string_view text) {
  IpAddress ip;
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= text.size() || text[pos] != '.') return invalid_argument("not an IPv4 address");
      ++pos;
    }
    const size_t start = pos;
    unsigned value = 0;
    while (pos < text.size() && is_digit(text[pos]) && pos - start < 3) value = value * 10 + unsigned(text[pos++] - '0');
    const size_t len = pos - start;
    if (len == 0 || value > 255 || (len > 1 && text[start] == '0')) return invalid_argument("not an IPv4 address");
    ip.bytes[part] = static_cast<uint8_t>(value);
  }
  if (pos != text.size()) return invalid_argument("not an IPv4 address");
  return ip;
}

Result<IpAddress> parse_ipv6(std::string_view text) {
  // inet_pton is a pure parser of RFC 4291 text (including embedded dotted quads); it needs
  // a terminated copy, and rejects zone ids and brackets, which is what we want.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return invalid_argument("not an IPv6 address");
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  IpAddress ip;
  ip.v6 = true;
  if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) return invalid_argument("not an IPv6 address");
  return ip;
}

Result<IpAddress> parse_ip_address(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return parse_ipv6(text);
  return parse_ipv4(text);
}

const char* address_class_name(AddressClass c) {
  switch (c) {
    case AddressClass::kPublic: return "public";
    case AddressClass::kLoopback: return "loopback";
    case AddressClass::kPrivate: return "private";
    case AddressClass::kLinkLocal: return "link-local";
    case AddressClass::kUnspecified: return "unspecified";
    case AddressClass::kMulticast: return "multicast";
    case AddressClass::kReserved: return "reserved";
  }
  return "?";
}

AddressClass classify_address(const IpAddress& address) {
  if (!address.v6) return classify_v4(load_be32(address.bytes.data()));
  return classify_v6(address.bytes);
}

}  // namespace k2::mm

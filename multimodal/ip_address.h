// IP addresses and their classification for server-side request forgery checks: a media
// fetch may only connect to public unicast addresses. Value types and pure functions:
// thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "shm/status.h"

namespace k2::mm {

struct IpAddress {
  bool v6 = false;
  // v4: bytes[0..3] in network order; v6: all 16 bytes in network order.
  std::array<uint8_t, 16> bytes{};

  static IpAddress v4_from(uint8_t a, uint8_t b, uint8_t c, uint8_t d);
  std::string to_string() const;  // dotted quad, or RFC 5952 text for v6
  bool operator==(const IpAddress&) const = default;
};

// Strict literals only: IPv4 as four decimal octets without leading zeros ("127.0.0.1"; not
// "127.1", "0x7f.0.0.1", "0177.0.0.1" or "2130706433", which some resolvers read as
// addresses), IPv6 in RFC 4291 text without brackets or zone ids.
Result<IpAddress> parse_ipv4(std::string_view text);
Result<IpAddress> parse_ipv6(std::string_view text);
Result<IpAddress> parse_ip_address(std::string_view text);

enum class AddressClass {
  kPublic,       // global unicast: the only class a fetch may reach by default
  kLoopback,     // 127/8, ::1
  kPrivate,      // 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7, fec0::/10
  kLinkLocal,    // 169.254/16 (cloud metadata lives here), fe80::/10
  kUnspecified,  // 0/8, ::
  kMulticast,    // 224/4, ff00::/8
  kReserved,     // broadcast, 240/4, documentation, benchmarking, IETF protocol ranges, ...
};

const char* address_class_name(AddressClass c);

// IPv6 forms that embed an IPv4 address (v4-mapped ::ffff:a.b.c.d, v4-compatible ::a.b.c.d,
// NAT64 64:ff9b::/96, 6to4 2002::/16) are classified by the embedded IPv4 address, since that
// is where a packet to them ends up.
AddressClass classify_address(const IpAddress& address);

inline bool is_public_address(const IpAddress& address) { return classify_address(address) == AddressClass::kPublic; }

}  // namespace k2::mm

#include "multimodal/ip_address.h"

#include <gtest/gtest.h>

namespace k2::mm {
namespace {

AddressClass cls(const char* text) {
  auto ip = parse_ip_address(text);
  EXPECT_TRUE(ip.ok()) << text;
  return ip.ok() ? classify_address(*ip) : AddressClass::kReserved;
}

TEST(IpAddress, ParsesStrictLiterals) {
  auto v4 = parse_ipv4("192.168.1.20");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(*v4, IpAddress::v4_from(192, 168, 1, 20));
  EXPECT_EQ(v4->to_string(), "192.168.1.20");
  for (const char* bad : {"127.1", "127.0.0.01", "0x7f.0.0.1", "2130706433", "1.2.3.4.5", "256.1.1.1", "1.2.3.",
                          "", "1..2.3", " 1.2.3.4", "1.2.3.4 "}) {
    EXPECT_FALSE(parse_ipv4(bad).ok()) << bad;
  }
  auto v6 = parse_ipv6("2001:db8::1");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->v6);
  EXPECT_EQ(v6->to_string(), "2001:db8::1");
  for (const char* bad : {"[::1]", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", ":::", "g::1"}) {
    EXPECT_FALSE(parse_ipv6(bad).ok()) << bad;
  }
}

TEST(IpAddress, ClassifiesIpv4) {
  EXPECT_EQ(cls("8.8.8.8"), AddressClass::kPublic);
  EXPECT_EQ(cls("1.1.1.1"), AddressClass::kPublic);
  EXPECT_EQ(cls("127.0.0.1"), AddressClass::kLoopback);
  EXPECT_EQ(cls("127.255.255.254"), AddressClass::kLoopback);
  EXPECT_EQ(cls("10.1.2.3"), AddressClass::kPrivate);
  EXPECT_EQ(cls("172.16.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("172.31.255.255"), AddressClass::kPrivate);
  EXPECT_EQ(cls("172.32.0.1"), AddressClass::kPublic);
  EXPECT_EQ(cls("192.168.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("100.64.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("169.254.169.254"), AddressClass::kLinkLocal);  // cloud metadata
  EXPECT_EQ(cls("0.0.0.0"), AddressClass::kUnspecified);
  EXPECT_EQ(cls("224.0.0.1"), AddressClass::kMulticast);
  EXPECT_EQ(cls("239.255.255.250"), AddressClass::kMulticast);
  EXPECT_EQ(cls("255.255.255.255"), AddressClass::kReserved);
  EXPECT_EQ(cls("198.18.0.1"), AddressClass::kReserved);
}

TEST(IpAddress, ClassifiesIpv6IncludingEmbeddedIpv4) {
  EXPECT_EQ(cls("2606:4700:4700::1111"), AddressClass::kPublic);
  EXPECT_EQ(cls("::1"), AddressClass::kLoopback);
  EXPECT_EQ(cls("::"), AddressClass::kUnspecified);
  EXPECT_EQ(cls("fe80::1"), AddressClass::kLinkLocal);
  EXPECT_EQ(cls("febf::1"), AddressClass::kLinkLocal);
  EXPECT_EQ(cls("fc00::1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("fd12:3456::1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("ff02::1"), AddressClass::kMulticast);
  EXPECT_EQ(cls("2001:db8::1"), AddressClass::kReserved);
  // v4-mapped, v4-compatible, NAT64 and 6to4 take the class of the embedded address.
  EXPECT_EQ(cls("::ffff:127.0.0.1"), AddressClass::kLoopback);
  EXPECT_EQ(cls("::ffff:7f00:1"), AddressClass::kLoopback);
  EXPECT_EQ(cls("::ffff:169.254.169.254"), AddressClass::kLinkLocal);
  EXPECT_EQ(cls("::ffff:10.0.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("::ffff:8.8.8.8"), AddressClass::kPublic);
  EXPECT_EQ(cls("::10.0.0.1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("64:ff9b::192.168.1.1"), AddressClass::kPrivate);
  EXPECT_EQ(cls("64:ff9b::8.8.8.8"), AddressClass::kPublic);
  EXPECT_EQ(cls("2002:7f00:1::"), AddressClass::kLoopback);
  EXPECT_EQ(cls("2001:0:4136:e378:8000:63bf:3fff:fdd2"), AddressClass::kReserved);  // Teredo
  EXPECT_EQ(cls("4000::1"), AddressClass::kReserved);  // outside 2000::/3
}

}  // namespace
}  // namespace k2::mm

#include "multimodal/http_url.h"

#include <gtest/gtest.h>

#include "multimodal/fetch_policy.h"

namespace k2::mm {
namespace {

TEST(HttpUrl, ParsesAndCanonicalises) {
  auto u = parse_http_url("HTTPS://Example.COM./a/b%20c?x=1#frag");
  ASSERT_TRUE(u.ok()) << u.status().to_string();
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/a/b%20c?x=1");
  EXPECT_FALSE(u->ip.has_value());
  EXPECT_EQ(u->to_string(), "https://example.com/a/b%20c?x=1");
  auto again = parse_http_url(u->to_string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->to_string(), u->to_string());

  auto v = parse_http_url("http://[::1]:8080?q");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->host, "::1");
  ASSERT_TRUE(v->ip.has_value());
  EXPECT_EQ(v->port, 8080);
  EXPECT_EQ(v->target, "/?q");
  EXPECT_EQ(v->authority(), "[::1]:8080");

  auto w = parse_http_url("http://img.example.org/caf\xc3\xa9.png");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->target, "/caf%C3%A9.png");
}

TEST(HttpUrl, RejectsAmbiguousOrHostileForms) {
  for (const char* bad : {
           "ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "//example.com/x",
           "http://user:pw@example.com/",  // user info disguises the host
           "http://example.com@127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://2130706433/",
           "http://0177.0.0.1/", "http://exa mple.com/", "http://example.com/a b", "http://example.com\\@evil/",
           "http://ex%61mple.com/", "http://example.com:0/", "http://example.com:65536/", "http://example.com:/",
           "http://example.com:8x/", "http:///x", "http://[::1/", "http://[fe80::1%25eth0]/", "http://ex\xc3\xa4mple/",
           "http://example.com/\x01", "http://a..b/"}) {
    EXPECT_FALSE(parse_http_url(bad).ok()) << bad;
  }
}

TEST(HttpUrl, ResolvesRedirects) {
  auto base = parse_http_url("https://cdn.example.com/img/a/b.png?x=1");
  ASSERT_TRUE(base.ok());
  auto to = [&](const char* loc) {
    auto r = resolve_redirect(*base, loc);
    return r.ok() ? r->to_string() : "ERR";
  };
  EXPECT_EQ(to("http://other.example/x"), "http://other.example/x");
  EXPECT_EQ(to("//other.example/x"), "https://other.example/x");
  EXPECT_EQ(to("/root.png"), "https://cdn.example.com/root.png");
  EXPECT_EQ(to("c.png"), "https://cdn.example.com/img/a/c.png");
  EXPECT_EQ(to("../../../../up.png"), "https://cdn.example.com/up.png");
  EXPECT_EQ(to("?y=2"), "https://cdn.example.com/img/a/b.png?y=2");
  EXPECT_EQ(to("file:///etc/passwd"), "ERR");
  EXPECT_EQ(to("data:image/png;base64,AAAA"), "ERR");
  EXPECT_EQ(to("http://169.254.169.254/latest/meta-data/"), "http://169.254.169.254/latest/meta-data/");
  EXPECT_EQ(to(""), "ERR");
}

TEST(FetchPolicy, RefusesPrivateTargetsAtEveryHop) {
  MediaFetchPolicy policy;
  for (const char* url : {"http://127.0.0.1/x", "http://[::1]/x", "http://10.0.0.5/x", "http://169.254.169.254/x",
                          "http://[::ffff:127.0.0.1]/x", "http://[fe80::1]/x", "http://0.0.0.0/x", "http://224.0.0.1/x",
                          "http://[fd00::1]/x"}) {
    auto u = parse_http_url(url);
    ASSERT_TRUE(u.ok()) << url;
    EXPECT_FALSE(check_fetch_url(*u, policy).ok()) << url;
  }
  auto pub = parse_http_url("https://example.com/x.png");
  ASSERT_TRUE(pub.ok());
  EXPECT_TRUE(check_fetch_url(*pub, policy).ok());
  // A public name that resolves to a private address is caught when connecting.
  EXPECT_FALSE(check_connect_address(*parse_ip_address("192.168.0.10"), policy).ok());
  EXPECT_TRUE(check_connect_address(*parse_ip_address("93.184.216.34"), policy).ok());
  // A redirect from a public URL to the metadata address is refused at the new hop.
  auto hop = resolve_redirect(*pub, "http://169.254.169.254/latest/");
  ASSERT_TRUE(hop.ok());
  EXPECT_FALSE(check_fetch_url(*hop, policy).ok());

  policy.allow_private_addresses = true;
  EXPECT_TRUE(check_connect_address(*parse_ip_address("10.0.0.5"), policy).ok());
  EXPECT_FALSE(check_connect_address(*parse_ip_address("224.0.0.1"), policy).ok());
}

TEST(FetchPolicy, AllowedDomains) {
  MediaFetchPolicy policy;
  policy.allowed_domains = {"Images.Example.com."};
  EXPECT_TRUE(check_fetch_url(*parse_http_url("https://images.example.com/a.png"), policy).ok());
  EXPECT_FALSE(check_fetch_url(*parse_http_url("https://evil.com/a.png"), policy).ok());
  EXPECT_FALSE(check_fetch_url(*parse_http_url("https://images.example.com.evil.com/a.png"), policy).ok());
  EXPECT_FALSE(check_fetch_url(*parse_http_url("https://sub.images.example.com/a.png"), policy).ok());
}

}  // namespace
}  // namespace k2::mm

#include "multimodal/fetch_policy.h"

namespace k2::mm {
namespace {

std::string canonical_domain(const std::string& domain) {
  std::string d;
  for (char c : domain) d.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);
  while (!d.empty() && d.back() == '.') d.pop_back();
  return d;
}

}  // namespace

Status check_fetch_url(const HttpUrl& url, const MediaFetchPolicy& policy) {
  if (!policy.allowed_domains.empty()) {
    bool allowed = false;
    for (const std::string& d : policy.allowed_domains) allowed = allowed || canonical_domain(d) == url.host;
    if (!allowed) return invalid_argument("media host '" + url.host + "' is not in --allowed-media-domains");
  }
  if (url.ip) return check_connect_address(*url.ip, policy);
  return {};
}

Status check_connect_address(const IpAddress& address, const MediaFetchPolicy& policy) {
  const AddressClass cls = classify_address(address);
  if (cls == AddressClass::kPublic) return {};
  // Even a trusted deployment never fetches from unspecified, multicast or reserved space.
  if (policy.allow_private_addresses &&
      (cls == AddressClass::kPrivate || cls == AddressClass::kLoopback || cls == AddressClass::kLinkLocal)) {
    return {};
  }
  return invalid_argument("media URL resolves to a " + std::string(address_class_name(cls)) + " address (" +
                          address.to_string() + "), which is not allowed");
}

}  // namespace k2::mm

#pragma once
// The status page (issue 15, design §7): one self-contained HTML document (CSS and JS inline,
// no network fetches but the router's own API), compiled into the binary from
// src/router/ui/status.html at build time. Served at GET / and /ui unless --no-ui.

#include <string>
#include <string_view>

namespace hangar::router {

// The page as built. Its <body data-auth="__HANGAR_AUTH__"> placeholder is filled by
// status_page(): "key" when the router has an API key (the page then asks for it before it
// reads anything), "none" otherwise.
std::string_view status_page_template();
std::string status_page(bool needs_key);

}  // namespace hangar::router

#include "router/status_page.h"

namespace hangar::router {

std::string status_page(bool needs_key) {
  static constexpr std::string_view kPlaceholder = "__HANGAR_AUTH__";
  std::string page(status_page_template());
  if (size_t at = page.find(kPlaceholder); at != std::string::npos) {
    page.replace(at, kPlaceholder.size(), needs_key ? "key" : "none");
  }
  return page;
}

}  // namespace hangar::router

# router_bench (issue 5 item 8): include(router.cmake) from bench/CMakeLists.txt.
add_executable(router_bench "${CMAKE_CURRENT_LIST_DIR}/router_bench.cc")
target_compile_options(router_bench PRIVATE ${HANGAR_WARNINGS})
target_link_libraries(router_bench PRIVATE hangar_router hangar_http hangar_common)
if(TARGET hangar-fake-worker)
  add_dependencies(router_bench hangar-fake-worker)
endif()

# Shared by the consumer projects: what a consumer of geo::geo must (not) get.

# geo::geo must not carry warning flags: those belong to geo's own tests.
function(geo_consumer_check_target target)
    if(NOT TARGET ${target})
        message(FATAL_ERROR "consumer: target ${target} does not exist")
    endif()
    get_target_property(options ${target} INTERFACE_COMPILE_OPTIONS)
    if(options)
        foreach(option IN LISTS options)
            if(option MATCHES "(^|[^A-Za-z])[-/]W|/WX")
                message(FATAL_ERROR
                    "consumer: ${target} propagates the warning option '${option}'")
            endif()
        endforeach()
    endif()
    message(STATUS "consumer: ${target} propagates no warning options")
endfunction()

# Vendoring geo must not build its tests, examples or benchmarks (or need Catch2).
function(geo_consumer_check_vendored)
    foreach(option GEO_BUILD_TESTS GEO_BUILD_EXAMPLES GEO_BUILD_BENCHMARKS GEO_INSTALL)
        if(${option})
            message(FATAL_ERROR "consumer: ${option} is ON in a vendored geo")
        endif()
    endforeach()
    foreach(target geo_test_support geo_header_check geo_multiple_tu)
        if(TARGET ${target})
            message(FATAL_ERROR "consumer: vendored geo defined test target ${target}")
        endif()
    endforeach()
endfunction()

function(geo_consumer_add_program)
    add_executable(geo_consumer ${CMAKE_CURRENT_LIST_DIR}/../consumer_main.cpp)
    target_link_libraries(geo_consumer PRIVATE geo::geo)
    enable_testing()
    add_test(NAME geo_consumer COMMAND geo_consumer)
endfunction()

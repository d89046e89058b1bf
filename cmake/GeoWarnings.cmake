# Strict warnings for geo's OWN targets (tests, examples, benchmarks, header
# checks). Never applied to the geo interface target: consumers choose their
# own flags.
include_guard(GLOBAL)

option(GEO_WARNINGS_AS_ERRORS "Treat warnings in geo's own targets as errors" ON)

function(geo_enable_warnings target)
    if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
        if(GEO_WARNINGS_AS_ERRORS)
            target_compile_options(${target} PRIVATE -Werror)
            if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
                # GCC's -Wmaybe-uninitialized misfires at -O2 on copies of a
                # disengaged std::optional (GCC PR 80635); keep it a warning.
                target_compile_options(${target} PRIVATE -Wno-error=maybe-uninitialized)
            endif()
        endif()
    elseif(MSVC)
        target_compile_options(${target} PRIVATE /W4 /permissive-)
        if(GEO_WARNINGS_AS_ERRORS)
            target_compile_options(${target} PRIVATE /WX)
        endif()
    endif()
endfunction()

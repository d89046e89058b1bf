# Fails when a header under include/ is longer than GEO_MAX_HEADER_LINES lines: a header that
# grows past it holds more than one part and should be split (docs/design.md, section 6).
#   cmake -DGEO_INCLUDE_DIR=<include> -DGEO_MAX_HEADER_LINES=450 -P header_length.cmake
file(GLOB_RECURSE headers "${GEO_INCLUDE_DIR}/*.hpp")
set(too_long)
foreach(header IN LISTS headers)
    # Count newlines (file(STRINGS) would skip empty lines).
    file(READ "${header}" content)
    string(REGEX MATCHALL "\n" newlines "${content}")
    list(LENGTH newlines count)
    if(count GREATER GEO_MAX_HEADER_LINES)
        file(RELATIVE_PATH name "${GEO_INCLUDE_DIR}" "${header}")
        list(APPEND too_long "${name} (${count} lines)")
    endif()
endforeach()
if(too_long)
    message(FATAL_ERROR "headers longer than ${GEO_MAX_HEADER_LINES} lines: ${too_long}")
endif()
list(LENGTH headers n)
message(STATUS "${n} headers, none longer than ${GEO_MAX_HEADER_LINES} lines")

# cmake -DGEO_BUILD_DIR=<dir> -DGEO_STAGING_PREFIX=<dir> [-DGEO_CONFIG=<cfg>] -P stage_install.cmake
# A fresh `cmake --install` of the geo build tree into a staging prefix, then a
# check that the package files are where find_package(geo) looks for them.
foreach(var GEO_BUILD_DIR GEO_STAGING_PREFIX)
    if(NOT ${var})
        message(FATAL_ERROR "stage_install: ${var} is not set")
    endif()
endforeach()

file(REMOVE_RECURSE "${GEO_STAGING_PREFIX}")
set(config_args)
if(GEO_CONFIG)
    set(config_args --config "${GEO_CONFIG}")
endif()
execute_process(
    COMMAND "${CMAKE_COMMAND}" --install "${GEO_BUILD_DIR}" --prefix "${GEO_STAGING_PREFIX}" ${config_args}
    RESULT_VARIABLE result)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "stage_install: cmake --install failed (${result})")
endif()

file(GLOB_RECURSE config_files "${GEO_STAGING_PREFIX}/*/geoConfig.cmake")
if(NOT config_files)
    message(FATAL_ERROR "stage_install: no geoConfig.cmake under ${GEO_STAGING_PREFIX}")
endif()
list(GET config_files 0 config_file)
get_filename_component(config_dir "${config_file}" DIRECTORY)
foreach(file geoConfigVersion.cmake geoTargets.cmake)
    if(NOT EXISTS "${config_dir}/${file}")
        message(FATAL_ERROR "stage_install: ${config_dir}/${file} is missing")
    endif()
endforeach()
foreach(header geo/geo.hpp geo/json.hpp)
    if(NOT EXISTS "${GEO_STAGING_PREFIX}/include/${header}")
        message(FATAL_ERROR "stage_install: include/${header} is missing")
    endif()
endforeach()
message(STATUS "stage_install: geo installed into ${GEO_STAGING_PREFIX} (${config_dir})")

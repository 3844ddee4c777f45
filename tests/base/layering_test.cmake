# The layering test (tests/base/CMakeLists.txt): fails when a target that
# must stay free of some libraries links them after all.
#   CLOSURE    file with the target's link closure, one name a line
#              (written at configure time by flowrun_link_closure)
#   FORBIDDEN  comma-separated names that must not be in it
#   BINARY     optional: an executable linking the target and nothing else of
#              flowrun; its dynamic section must not need FORBIDDEN_SONAMES
#   FORBIDDEN_SONAMES  regular expression over its NEEDED entries
cmake_minimum_required(VERSION 3.22)
file(STRINGS "${CLOSURE}" closure)
string(REPLACE "," ";" FORBIDDEN "${FORBIDDEN}")
get_filename_component(what "${CLOSURE}" NAME_WE)
set(bad "")
foreach(f IN LISTS FORBIDDEN)
  if(f IN_LIST closure)
    list(APPEND bad ${f})
  endif()
endforeach()
if(bad)
  list(JOIN closure ", " shown)
  message(FATAL_ERROR "${what}: links ${bad}, which this layer must not (closure: ${shown})")
endif()
if(BINARY)
  execute_process(COMMAND readelf -d "${BINARY}" OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "readelf -d ${BINARY} failed (${rc})")
  endif()
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*" needed "${dyn}")
  foreach(n IN LISTS needed)
    if(n MATCHES "${FORBIDDEN_SONAMES}")
      message(FATAL_ERROR "${BINARY} needs a library this layer must not: ${n}")
    endif()
  endforeach()
  list(LENGTH needed count)
  message(STATUS "${BINARY}: ${count} NEEDED entries, none matching ${FORBIDDEN_SONAMES}")
endif()
message(STATUS "${what}: none of ${FORBIDDEN} in ${closure}")

# Runs EXAMPLE twice with RINGRIFT_COORDINATION_DIR=DB_DIR (emptied first).
# Each run must exit 0. When SOURCE has a line
#   * CHECK: <text>
# (its first and second run) the output of the second run must contain <text>.
file(REMOVE_RECURSE ${DB_DIR})
set(ENV{RINGRIFT_COORDINATION_DIR} ${DB_DIR})
foreach(run 1 2)
  execute_process(COMMAND ${EXAMPLE} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${EXAMPLE} (run ${run}) exited with ${rc}:\n${out}\n${err}")
  endif()
endforeach()
file(STRINGS ${SOURCE} checks REGEX "^ \\* CHECK: ")
foreach(line ${checks})
  string(REGEX REPLACE "^ \\* CHECK: " "" want "${line}")
  string(FIND "${out}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${EXAMPLE}: the second run does not print '${want}':\n${out}")
  endif()
endforeach()
file(REMOVE_RECURSE ${DB_DIR})

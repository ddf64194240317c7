# Fails when DOC differs from what `rre catalog --format markdown` prints.
execute_process(COMMAND ${RRE} catalog --format markdown OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rre catalog --format markdown failed with status ${rc}")
endif()
file(READ ${DOC} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "${DOC} is out of date; regenerate it with: rre catalog --format markdown > docs/EVENT_CATALOG.md")
endif()

# check_output.cmake -- run an example and check its output.
#
#   cmake -DEXE=<program> -DEXPECT=<file> [-DARGS=a|b] [-DTIMEOUT=<s>]
#         -P check_output.cmake
#
# Fails when the program exits with a non-zero status (or a signal, or
# runs past TIMEOUT), or when a line of EXPECT is not satisfied. EXPECT
# holds one CMake regular expression per line, each matched against the
# output one line at a time (so ^ and $ anchor to a line):
#   REGEX      some output line must match
#   !REGEX     no output line may match
#   # ...      comment; blank lines are ignored
# Lines are read without CMake's list splitting, so ';' and unbalanced
# brackets in a regex are safe.

cmake_minimum_required(VERSION 3.16)

foreach(var EXE EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_output.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT TIMEOUT)
  set(TIMEOUT 60)
endif()
set(args "")
if(ARGS)
  string(REPLACE "|" ";" args "${ARGS}")
endif()

# Leave a little of the ctest TIMEOUT to report a timeout ourselves.
math(EXPR run_timeout "${TIMEOUT} - 5")
if(run_timeout LESS 5)
  set(run_timeout ${TIMEOUT})
endif()
execute_process(COMMAND ${EXE} ${args}
                OUTPUT_VARIABLE output
                ERROR_VARIABLE output
                RESULT_VARIABLE status
                TIMEOUT ${run_timeout})
string(REPLACE "\r" "" output "${output}")
message("---- output of ${EXE}\n${output}---- end of output")
if(NOT status STREQUAL "0")
  message(FATAL_ERROR "${EXE} failed: ${status}")
endif()

# Iterate over the lines of a text without turning it into a list.
# Sets <line_var> to the line at <pos_var> and advances <pos_var>; sets
# <pos_var> to -1 when the text is exhausted.
function(next_line text pos_var line_var)
  set(pos ${${pos_var}})
  string(LENGTH "${text}" len)
  if(pos GREATER_EQUAL len)
    set(${pos_var} -1 PARENT_SCOPE)
    set(${line_var} "" PARENT_SCOPE)
    return()
  endif()
  string(SUBSTRING "${text}" ${pos} -1 rest)
  string(FIND "${rest}" "\n" nl)
  if(nl EQUAL -1)
    set(line "${rest}")
    set(pos ${len})
  else()
    string(SUBSTRING "${rest}" 0 ${nl} line)
    math(EXPR pos "${pos} + ${nl} + 1")
  endif()
  set(${pos_var} ${pos} PARENT_SCOPE)
  set(${line_var} "${line}" PARENT_SCOPE)
endfunction()

# Does any line of the output match regex? Result in <out_var>.
function(output_matches regex out_var)
  set(found FALSE)
  set(pos 0)
  while(TRUE)
    next_line("${output}" pos line)
    if(pos EQUAL -1)
      break()
    endif()
    if("${line}" MATCHES "${regex}")
      set(found TRUE)
      break()
    endif()
  endwhile()
  set(${out_var} ${found} PARENT_SCOPE)
endfunction()

file(READ "${EXPECT}" expect)
set(failures 0)
set(pos 0)
while(TRUE)
  next_line("${expect}" pos rule)
  if(pos EQUAL -1)
    break()
  endif()
  string(STRIP "${rule}" rule)
  if(rule STREQUAL "" OR rule MATCHES "^#")
    continue()
  endif()
  if(rule MATCHES "^!")
    string(SUBSTRING "${rule}" 1 -1 regex)
    output_matches("${regex}" found)
    if(found)
      message("forbidden line present: ${regex}")
      math(EXPR failures "${failures} + 1")
    endif()
  else()
    output_matches("${rule}" found)
    if(NOT found)
      message("expected line missing: ${rule}")
      math(EXPR failures "${failures} + 1")
    endif()
  endif()
endwhile()
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} expectation(s) of ${EXPECT} not met")
endif()

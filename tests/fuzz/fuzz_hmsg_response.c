/*
 * fuzz_hmsg_response: the response side of hmsg under the same harness and
 * invariants as fuzz_hmsg_request.c (see there), plus: every error is 502,
 * status is 100..999, 101 is an upgrade, an EOF-delimited body never keeps
 * the connection alive. Which responses answer a HEAD request is derived
 * from the input, the same way for the whole and the split runs.
 */
#define FUZZ_HMSG_KIND HMSG_RESPONSE
#include "fuzz_hmsg_request.c"

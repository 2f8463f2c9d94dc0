/*
 * json.h — response writing (see json.c).
 */
#ifndef TOKD_JSON_H
#define TOKD_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "serve/request.h"
#include "tok.h"

tok_err tokd_json_string(tok_buf *out, const char *s, size_t len); /* quoted, escaped */
tok_err tokd_json_ids(tok_buf *out, const uint32_t *ids, size_t n);  /* [1,2,3] */
tok_err tokd_json_uint(tok_buf *out, unsigned long long v);
tok_err tokd_json_lit(tok_buf *out, const char *literal);
/* An error answer in the endpoint's shape (routes.h: tokd_error_shape) */
tok_err tokd_json_error(tok_buf *out, const tokd_http_error *e, tokd_error_shape shape);
tok_err tokd_json_double(tok_buf *out, double v); /* as Python's json.dumps writes a float */

#endif

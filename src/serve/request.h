/*
 * request.h — a parsed API request, independent of how it arrived (JSON body, or a
 * text/plain body with options in the query string), and the writer helpers for
 * responses. json.c fills requests from JSON; server.c from query strings.
 */
#ifndef TOKD_REQUEST_H
#define TOKD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "tok.h"

/* An error answer: HTTP status, OpenAI-style type and code, the offending parameter. */
typedef struct tokd_http_error {
  unsigned status;
  const char *type;  /* "invalid_request_error", "not_found_error", ... */
  const char *code;  /* machine-readable, e.g. "invalid_json", "unknown_token" */
  char param[48];    /* "" when no single parameter is at fault */
  char message[400];
} tokd_http_error;

void tokd_error_set(tokd_http_error *e, unsigned status, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* DEFAULT: the encoding's default (none for tiktoken, all for Hugging Face tokenizers) */
typedef enum { SPECIAL_DEFAULT, SPECIAL_NONE, SPECIAL_ALL, SPECIAL_LIST } tokd_special_kind;

typedef struct tokd_request {
  void *json_root; /* owned parse tree, freed by tokd_request_free */

  const char *encoding; /* NULL: not given */
  const char *model;

  /* texts (encode, count, tokenize) */
  size_t n_texts;
  const char **texts;
  size_t *text_lens;
  bool batch; /* texts came as a list */

  /* token id lists (decode, detokenize): list i is ids[list_start[i] .. list_start[i+1]) */
  size_t n_lists;
  uint32_t *ids;
  size_t *list_start;

  tokd_special_kind allowed_kind;
  const char **allowed; /* SPECIAL_LIST: the texts */
  size_t *allowed_lens;
  size_t n_allowed;
  bool check_disallowed;

  bool offsets;
  long long max_tokens;  /* -1: none */
  bool truncate_left;
  long long limit;       /* count: -1 none */
  bool bytes_out;        /* decode: exact bytes as base64 too */
  bool stream;           /* decode: hold back an incomplete UTF-8 tail */
  const char *tail;      /* decode: base64 tail from the previous call */
  bool add_special_tokens;  /* encode/count/tokenize: the post-processor's BOS/EOS */
  bool skip_special_tokens; /* decode/detokenize */
  bool token_strings;       /* encode: token strings too (vLLM: return_token_strs) */
} tokd_request;

/* Parses a JSON body for endpoint ep. On failure fills err (400 with the byte position of
 * a syntax error, or naming the bad field) and returns false. Unknown fields are errors on
 * tokd's own endpoints and ignored on vLLM's. max_batch and max_ids bound list sizes. */
bool tokd_request_parse_json(tokd_endpoint ep, const char *body, size_t len, size_t max_batch,
                             size_t max_ids, tokd_request *req, tokd_http_error *err);
void tokd_request_free(tokd_request *req);

/* Response writing (hand-written JSON; no per-number formatting library calls). */
tok_err tokd_json_string(tok_buf *out, const char *s, size_t len); /* quoted, escaped */
tok_err tokd_json_ids(tok_buf *out, const uint32_t *ids, size_t n);  /* [1,2,3] */
tok_err tokd_json_uint(tok_buf *out, unsigned long long v);
tok_err tokd_json_lit(tok_buf *out, const char *literal);
tok_err tokd_json_error(tok_buf *out, const tokd_http_error *e);

#endif

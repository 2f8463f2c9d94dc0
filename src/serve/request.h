/*
 * request.h — a parsed API request, independent of how it arrived (a JSON body, or a
 * text/plain body with options in the query string), and the error answer.
 *
 * Parsing works in place: JSON strings are unescaped inside the body buffer (an escape is
 * never shorter than what it stands for), so a text costs no copy and a request costs
 * about its body plus 4 bytes per token id. Defaults are set in one place
 * (tokd_request_init).
 */
#ifndef TOKD_REQUEST_H
#define TOKD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "serve/routes.h"
#include "tok.h"

/* An error answer: HTTP status, OpenAI-style type and code, the offending parameter. */
typedef struct tokd_http_error {
  unsigned status;
  const char *type;  /* "invalid_request_error", "not_found_error", ... */
  const char *code;  /* machine-readable, e.g. "invalid_json", "unknown_token" */
  char param[48];    /* "" when no single parameter is at fault; always valid UTF-8 */
  char message[400]; /* always valid UTF-8 */
} tokd_http_error;

void tokd_error_set(tokd_http_error *e, unsigned status, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* DEFAULT: the encoding's default (none for tiktoken, all for Hugging Face tokenizers) */
typedef enum { SPECIAL_DEFAULT, SPECIAL_NONE, SPECIAL_ALL, SPECIAL_LIST } tokd_special_kind;

typedef struct tokd_text {
  const char *s;
  size_t len;
} tokd_text;

typedef struct tokd_request {
  tokd_endpoint ep;
  uint64_t given; /* fields present (a mask of TOKD_FIELDS) */

  const char *encoding; /* NUL-terminated; NULL: not given */
  const char *model;

  /* texts (encode, count, tokenize) */
  tokd_text *texts;
  size_t n_texts;
  bool batch; /* texts (or id lists) came as a list */

  /* token id lists (decode, detokenize): list i is ids[list_start[i] .. list_start[i+1]) */
  uint32_t *ids;
  size_t n_ids;
  size_t *list_start;
  size_t n_lists;

  tokd_special_kind allowed_kind;
  tokd_text *allowed; /* SPECIAL_LIST: the texts */
  size_t n_allowed;
  bool check_disallowed;

  bool add_special_tokens;  /* encode/count/tokenize: the post-processor's BOS/EOS */
  bool skip_special_tokens; /* decode/detokenize */
  bool offsets;
  bool token_strings;       /* encode: token strings too (vLLM: return_token_strs) */
  long long max_tokens;     /* -1: none */
  bool truncate_left;
  long long limit;          /* count: -1 none */
  bool bytes_out;           /* decode: exact bytes as base64 too */
  bool stream;              /* decode: hold back an incomplete UTF-8 tail */
  const char *tail;         /* decode: base64 tail from the previous call */

  /* a chat conversation: the raw JSON of each field (untouched by in-place parsing) */
  tokd_text messages, tools, documents, chat_template_kwargs;
  const char *chat_template; /* a template for this request instead of the model's */
  bool add_generation_prompt;  /* default true (vLLM) */
  bool continue_final_message;

  /* the render API: the JSON of each sampling field (FIELDS_SAMPLING) and of "prompt",
   * as sent (null: absent), read by render.c, which knows vLLM's types and defaults */
  tokd_text raw[TOKD_F__COUNT];
} tokd_request;

/* Bounds parsing applies. */
typedef struct tokd_parse_limits {
  size_t max_batch; /* texts or id lists */
  size_t max_ids;   /* token ids in all */
} tokd_parse_limits;

/* A query-string parameter, copied at the headers. */
typedef struct tokd_query {
  const char *key, *value;
} tokd_query;

void tokd_request_init(tokd_request *req, tokd_endpoint ep);

/* Parses a JSON body (modified in place: the request points into it). On failure fills e
 * (400 with the byte position of a syntax error, or naming the bad field; 413 past a
 * limit) and returns false. */
bool tokd_request_parse_json(tokd_request *req, char *body, size_t len,
                             const tokd_parse_limits *lim, tokd_http_error *e);

/* A text/plain body: the text (encode, count, tokenize) or ids written as text (decode,
 * detokenize), with options from the query string. */
bool tokd_request_parse_text(tokd_request *req, char *body, size_t len, const tokd_query *query,
                             size_t n_query, const tokd_parse_limits *lim, tokd_http_error *e);

void tokd_request_free(tokd_request *req);

#endif

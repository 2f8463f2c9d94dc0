/*
 * request.c — request bodies and query strings into a tokd_request (see request.h).
 *
 * The JSON reader is written for these requests, not in general: it walks the body once,
 * unescapes strings where they are, reads token ids straight into an array, and checks
 * every field against the route table as it goes. What it guards against, and why it is
 * not cJSON: a body of 4 million ids made cJSON allocate a node per number (~40 bytes per
 * body byte); numbers are doubles there ("0.99999999999999999" became id 1); "\u0000"
 * truncated its strings. Here ids follow JSON's integer grammar strictly, a text may hold
 * U+0000 (lengths are explicit), a lone surrogate escape is refused (as serde_json does),
 * nesting is bounded, and a UTF-8 byte order mark before the object is skipped.
 */
#include "serve/request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_str.h"
#include "common/util.h"

#define MAX_DEPTH 64 /* nesting of values the parser skips (vLLM's ignored fields) */

void tokd_error_set(tokd_http_error *e, unsigned status, const char *code, const char *param,
                    const char *fmt, ...)
{
  e->status = status;
  e->code = code;
  e->type = status == 404   ? "not_found_error"
            : status == 413 ? "request_too_large"
            : status == 415 ? "unsupported_media_type"
            : status == 405 ? "method_not_allowed"
            : status == 503 || status == 429 ? "overloaded_error"
            : status >= 500 ? "server_error"
                            : "invalid_request_error";
  snprintf(e->param, sizeof e->param, "%s", param ? param : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  /* messages and params quote client input (names, field keys) and may be cut
   * mid-character: keep the JSON we write valid UTF-8 */
  size_t bad;
  for (char *s = e->message; !tok_utf8_valid(s, strlen(s), &bad);) s[bad] = '?';
  for (char *s = e->param; !tok_utf8_valid(s, strlen(s), &bad);) s[bad] = '?';
}

void tokd_request_init(tokd_request *req, tokd_endpoint ep)
{
  memset(req, 0, sizeof *req);
  req->ep = ep;
  req->max_tokens = -1;
  req->limit = -1;
  req->add_special_tokens = true; /* as Hugging Face's encode() and vLLM's /tokenize */
  req->add_generation_prompt = true; /* vLLM's chat default */
}

void tokd_request_free(tokd_request *req)
{
  free(req->texts);
  free(req->ids);
  free(req->list_start);
  free(req->allowed);
  memset(req, 0, sizeof *req);
}

static tokd_field field_of(const char *name, size_t len)
{
  for (int f = 0; f < TOKD_F__COUNT; f++)
    if (strlen(TOKD_FIELD_NAMES[f]) == len && memcmp(TOKD_FIELD_NAMES[f], name, len) == 0)
      return (tokd_field)f;
  return TOKD_F__COUNT;
}

static bool nomem(tokd_http_error *e)
{
  tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
  return false;
}

/* ---------------------------------------------------------------------------------------
 * The JSON reader
 */
typedef struct jp {
  char *p, *end, *start;
  tokd_http_error *e;
  bool keep; /* skipping a value that must stay as it is (raw chat fields) */
} jp;

static bool syntax(jp *j, const char *what)
{
  tokd_error_set(j->e, 400, "invalid_json", NULL, "malformed JSON at byte %zu: %s",
                 (size_t)(j->p - j->start), what);
  return false;
}

static void ws(jp *j)
{
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static bool eat(jp *j, char c)
{
  ws(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return true;
  }
  return false;
}

/* Steps over a string without changing it (its escapes are checked by whoever reads it). */
static bool scan_string(jp *j)
{
  const char *stop;
  bool plain;
  tok__jstr_err e = tok__jstr_scan(++j->p, j->end, &stop, &plain);
  j->p += stop - j->p;
  if (e) return syntax(j, tok__jstr_why(e));
  j->p++;
  return true;
}

/* A string value, unescaped in place and NUL-terminated where its closing quote was. */
static bool string(jp *j, char **out, size_t *out_len)
{
  ws(j);
  if (j->keep && j->p < j->end && *j->p == '"') {
    *out = NULL;
    *out_len = 0;
    return scan_string(j);
  }
  if (j->p >= j->end || *j->p != '"') return syntax(j, "expected a string");
  char *s = ++j->p;
  const char *stop;
  size_t n;
  tok__jstr_err e = tok__jstr_decode(s, j->end, s, &n, &stop);
  j->p += stop - j->p;
  if (e) return syntax(j, tok__jstr_why(e));
  s[n] = '\0'; /* the decoded text ends at or before the closing quote */
  *out = s;
  *out_len = n;
  j->p++;
  return true;
}

/* A JSON number that must be a whole number 0..max: JSON's integer grammar (no leading
 * zeros), no fraction, no exponent. *kind says what was wrong: 0 not a number (syntax), 1
 * a number but not a whole one in range. */
static bool whole_number(jp *j, unsigned long long max, unsigned long long *out, int *kind)
{
  ws(j);
  char *p = j->p;
  *kind = 0;
  if (p < j->end && *p == '-') {
    *kind = 1;
    p++;
  }
  if (p >= j->end || *p < '0' || *p > '9') return false;
  unsigned long long v = 0;
  bool over = false;
  if (*p == '0' && p + 1 < j->end && p[1] >= '0' && p[1] <= '9') {
    j->p = p;
    return false; /* a leading zero is not JSON */
  }
  while (p < j->end && *p >= '0' && *p <= '9') {
    if (v > (max - (unsigned long long)(*p - '0')) / 10) over = true;
    else v = v * 10 + (unsigned long long)(*p - '0');
    p++;
  }
  if (p < j->end && (*p == '.' || *p == 'e' || *p == 'E')) {
    /* a valid number, but not a whole one: consume it for the message */
    *kind = 1;
    if (*p == '.') {
      p++;
      while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
      p++;
      if (p < j->end && (*p == '+' || *p == '-')) p++;
      while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    j->p = p;
    return false;
  }
  j->p = p;
  if (over || *kind == 1) {
    *kind = 1;
    return false;
  }
  *out = v;
  return true;
}

static bool literal(jp *j, const char *word)
{
  size_t n = strlen(word);
  ws(j);
  if ((size_t)(j->end - j->p) >= n && memcmp(j->p, word, n) == 0) {
    j->p += n;
    return true;
  }
  return false;
}

/* Skips any value (for fields the lenient endpoints ignore). */
static bool skip_value(jp *j, int depth)
{
  char *s;
  size_t n;
  ws(j);
  if (depth > MAX_DEPTH) return syntax(j, "nested too deeply");
  if (j->p >= j->end) return syntax(j, "expected a value");
  char c = *j->p;
  if (c == '"') return string(j, &s, &n);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    if (eat(j, close)) return true;
    do {
      if (c == '{') {
        if (!string(j, &s, &n)) return false;
        if (!eat(j, ':')) return syntax(j, "expected ':'");
      }
      if (!skip_value(j, depth + 1)) return false;
    } while (eat(j, ','));
    return eat(j, close) ? true : syntax(j, "expected ',' or a closing bracket");
  }
  if (literal(j, "true") || literal(j, "false") || literal(j, "null")) return true;
  ws(j);
  char *p = j->p;
  if (p < j->end && *p == '-') p++;
  if (p >= j->end || *p < '0' || *p > '9') return syntax(j, "expected a value");
  if (*p == '0' && p + 1 < j->end && p[1] >= '0' && p[1] <= '9') {
    j->p = p;
    return syntax(j, "a number with a leading zero");
  }
  while (p < j->end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                        *p == '+' || *p == '-'))
    p++;
  j->p = p;
  return true;
}

/* ---------------------------------------------------------------------------------------
 * Fields
 */
static bool type_error(tokd_http_error *e, const char *name, const char *what)
{
  tokd_error_set(e, 400, "invalid_type", name, "\"%s\" must be %s", name, what);
  return false;
}

static bool get_bool(jp *j, const char *name, bool *out)
{
  if (literal(j, "true")) *out = true;
  else if (literal(j, "false")) *out = false;
  else return type_error(j->e, name, "true or false");
  return true;
}

static bool get_count(jp *j, const char *name, long long *out)
{
  unsigned long long v;
  int kind;
  if (literal(j, "null")) {
    *out = -1;
    return true;
  }
  if (!whole_number(j, (unsigned long long)1 << 62, &v, &kind)) {
    if (kind == 0 && j->p < j->end && (*j->p == '"' || *j->p == '[' || *j->p == '{' || *j->p == 't' || *j->p == 'f'))
      return type_error(j->e, name, "a whole number >= 0");
    if (kind == 0) return syntax(j, "expected a number");
    return type_error(j->e, name, "a whole number >= 0");
  }
  *out = (long long)v;
  return true;
}

static bool get_string_field(jp *j, const char *name, const char **out)
{
  char *s;
  size_t n;
  ws(j);
  if (j->p < j->end && *j->p != '"') return type_error(j->e, name, "a string");
  if (!string(j, &s, &n)) return false;
  if (memchr(s, '\0', n)) return type_error(j->e, name, "a string without U+0000");
  *out = s;
  return true;
}

static bool push_text(tokd_text **arr, size_t *n, size_t *cap, const char *s, size_t len)
{
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 8;
    tokd_text *grown = realloc(*arr, c * sizeof *grown);
    if (!grown) return false;
    *arr = grown;
    *cap = c;
  }
  (*arr)[(*n)++] = (tokd_text){s, len};
  return true;
}

static bool get_texts(jp *j, const char *name, const tokd_parse_limits *lim, tokd_request *req)
{
  char *s;
  size_t n, cap = 0;
  free(req->texts); /* a repeated key replaces the earlier value */
  req->texts = NULL;
  req->n_texts = 0;
  ws(j);
  if (j->p < j->end && *j->p == '"') {
    if (!string(j, &s, &n)) return false;
    req->batch = false;
    return push_text(&req->texts, &req->n_texts, &cap, s, n) || nomem(j->e);
  }
  if (!eat(j, '['))
    return type_error(j->e, name, req->ep == EP_TOKENIZE ? "a string" : "a string or a list of strings");
  if (req->ep == EP_TOKENIZE) return type_error(j->e, name, "a string");
  req->batch = true;
  if (eat(j, ']')) return true;
  do {
    ws(j);
    if (j->p < j->end && *j->p != '"') {
      char param[48];
      snprintf(param, sizeof param, "%s[%zu]", name, req->n_texts);
      return type_error(j->e, param, "a string");
    }
    if (!string(j, &s, &n)) return false;
    if (req->n_texts >= lim->max_batch) {
      tokd_error_set(j->e, 413, "batch_too_large", name,
                     "\"%s\" has more than %zu entries; this server takes at most %zu per request",
                     name, lim->max_batch, lim->max_batch);
      return false;
    }
    if (!push_text(&req->texts, &req->n_texts, &cap, s, n)) return nomem(j->e);
  } while (eat(j, ','));
  return eat(j, ']') ? true : syntax(j, "expected ',' or ']'");
}

static bool push_id(tokd_request *req, size_t *cap, uint32_t id)
{
  if (req->n_ids == *cap) {
    size_t c = *cap ? *cap * 2 : 1024;
    uint32_t *grown = realloc(req->ids, c * sizeof *grown);
    if (!grown) return false;
    req->ids = grown;
    *cap = c;
  }
  req->ids[req->n_ids++] = id;
  return true;
}

/* One list of ids; list_index is its place in a batch (for messages), or -1. */
static bool id_list(jp *j, const char *name, long list_index, const tokd_parse_limits *lim,
                    tokd_request *req, size_t *cap)
{
  size_t i = 0;
  if (eat(j, ']')) return true;
  do {
    unsigned long long v;
    int kind;
    char param[48];
    if (list_index >= 0) snprintf(param, sizeof param, "%s[%ld][%zu]", name, list_index, i);
    else snprintf(param, sizeof param, "%s[%zu]", name, i);
    if (!whole_number(j, UINT32_MAX, &v, &kind)) {
      if (kind == 0 && j->p < j->end && strchr("\"[{tfn", *j->p) == NULL) return syntax(j, "expected a number");
      tokd_error_set(j->e, 400, "invalid_token", param,
                     "\"%s\" must be a token id: a whole number from 0 to 4294967295", param);
      return false;
    }
    if (req->n_ids >= lim->max_ids) {
      tokd_error_set(j->e, 413, "too_many_tokens", name,
                     "more than %zu token ids; this server takes at most %zu per request",
                     lim->max_ids, lim->max_ids);
      return false;
    }
    if (!push_id(req, cap, (uint32_t)v)) return nomem(j->e);
    i++;
  } while (eat(j, ','));
  return eat(j, ']') ? true : syntax(j, "expected ',' or ']'");
}

static bool get_ids(jp *j, const char *name, const tokd_parse_limits *lim, tokd_request *req)
{
  size_t cap = 0, lists_cap = 0;
  free(req->ids);
  free(req->list_start);
  req->ids = NULL;
  req->list_start = NULL;
  req->n_ids = req->n_lists = 0;
  if (!eat(j, '[')) return type_error(j->e, name, "a list of token ids or a list of such lists");
  ws(j);
  req->batch = j->p < j->end && *j->p == '[' && req->ep == EP_DECODE;
  if (!req->batch) {
    if (!id_list(j, name, -1, lim, req, &cap)) return false;
    if (!(req->list_start = malloc(2 * sizeof *req->list_start))) return nomem(j->e);
    req->list_start[0] = 0;
    req->list_start[1] = req->n_ids;
    req->n_lists = 1;
    return true;
  }
  if (eat(j, ']')) return true;
  do {
    if (req->n_lists >= lim->max_batch) {
      tokd_error_set(j->e, 413, "batch_too_large", name,
                     "\"%s\" has more than %zu lists; this server takes at most %zu per request",
                     name, lim->max_batch, lim->max_batch);
      return false;
    }
    if (req->n_lists + 2 > lists_cap) {
      size_t c = lists_cap ? lists_cap * 2 : 16;
      size_t *grown = realloc(req->list_start, c * sizeof *grown);
      if (!grown) return nomem(j->e);
      req->list_start = grown;
      lists_cap = c;
    }
    req->list_start[req->n_lists] = req->n_ids;
    if (!eat(j, '['))
      return type_error(j->e, name, "a list of token ids or a list of such lists, not both");
    if (!id_list(j, name, (long)req->n_lists, lim, req, &cap)) return false;
    req->n_lists++;
  } while (eat(j, ','));
  req->list_start[req->n_lists] = req->n_ids;
  return eat(j, ']') ? true : syntax(j, "expected ',' or ']'");
}

static bool get_special(jp *j, const char *name, tokd_request *req)
{
  char *s;
  size_t n, cap = 0;
  ws(j);
  if (j->p < j->end && *j->p == '"') {
    if (!string(j, &s, &n)) return false;
    if (n == 3 && !memcmp(s, "all", 3)) req->allowed_kind = SPECIAL_ALL;
    else if (n == 4 && !memcmp(s, "none", 4)) req->allowed_kind = SPECIAL_NONE;
    else return type_error(j->e, name, "\"all\", \"none\" or a list of special-token texts");
    return true;
  }
  if (!eat(j, '[')) return type_error(j->e, name, "\"all\", \"none\" or a list of special-token texts");
  free(req->allowed);
  req->allowed = NULL;
  req->n_allowed = 0;
  req->allowed_kind = SPECIAL_LIST;
  if (eat(j, ']')) return true;
  do {
    ws(j);
    if (j->p < j->end && *j->p != '"') return type_error(j->e, name, "a list of special-token texts");
    if (!string(j, &s, &n)) return false;
    if (req->n_allowed >= TOK_MAX_SPECIAL) return type_error(j->e, name, "a list of at most 4096 texts");
    if (!push_text(&req->allowed, &req->n_allowed, &cap, s, n)) return nomem(j->e);
  } while (eat(j, ','));
  return eat(j, ']') ? true : syntax(j, "expected ',' or ']'");
}

/* A value kept as its raw JSON text for the chat module, which reads it itself (it keeps
 * integers apart from floats, as Python does). skip_value checks its syntax and leaves the
 * bytes untouched; null is kept as absent. */
static bool raw_value(jp *j, tokd_text *out)
{
  ws(j);
  if (literal(j, "null")) {
    out->s = NULL;
    out->len = 0;
    return true;
  }
  const char *start = j->p;
  j->keep = true;
  bool ok = skip_value(j, 0);
  j->keep = false;
  if (!ok) return false;
  out->s = start;
  out->len = (size_t)(j->p - start);
  return true;
}

static bool get_field(jp *j, tokd_field f, const char *name, const tokd_parse_limits *lim,
                      tokd_request *req)
{
  const char *side = NULL;
  /* the render API's sampling fields and prompt keep their JSON: render.c reads them with
   * vLLM's types (floats, lists, null for "unset"), which tokd's own fields do not share */
  if (tokd_route_error_shape(req->ep) != TOKD_ERRORS_TOKD && (FIELDS_RAW & (1ull << f)))
    return raw_value(j, &req->raw[f]);
  switch (f) {
  case TOKD_F_TEXT: case TOKD_F_PROMPT: return get_texts(j, name, lim, req);
  case TOKD_F_TOKENS: return get_ids(j, name, lim, req);
  case TOKD_F_ENCODING: return get_string_field(j, name, &req->encoding);
  case TOKD_F_MODEL:
    if (literal(j, "null")) return true;
    return get_string_field(j, name, &req->model);
  case TOKD_F_ALLOWED_SPECIAL: return get_special(j, name, req);
  case TOKD_F_DISALLOWED_SPECIAL:
    ws(j);
    if (j->p < j->end && *j->p == '"') {
      char *s;
      size_t n;
      if (!string(j, &s, &n)) return false;
      if (!(n == 3 && !memcmp(s, "all", 3)) && !(n == 4 && !memcmp(s, "none", 4)))
        return type_error(j->e, name, "true, false, \"all\" or \"none\"");
      req->check_disallowed = n == 3;
      return true;
    }
    return get_bool(j, name, &req->check_disallowed);
  case TOKD_F_ADD_SPECIAL_TOKENS: return get_bool(j, name, &req->add_special_tokens);
  case TOKD_F_SKIP_SPECIAL_TOKENS: return get_bool(j, name, &req->skip_special_tokens);
  case TOKD_F_OFFSETS: return get_bool(j, name, &req->offsets);
  case TOKD_F_TOKEN_STRINGS: return get_bool(j, name, &req->token_strings);
  case TOKD_F_RETURN_TOKEN_STRS:
    if (literal(j, "null")) return true;
    return get_bool(j, name, &req->token_strings);
  case TOKD_F_MAX_TOKENS: return get_count(j, name, &req->max_tokens);
  case TOKD_F_LIMIT: return get_count(j, name, &req->limit);
  case TOKD_F_BYTES: return get_bool(j, name, &req->bytes_out);
  case TOKD_F_STREAM: return get_bool(j, name, &req->stream);
  case TOKD_F_TAIL: return get_string_field(j, name, &req->tail);
  case TOKD_F_TRUNCATION_SIDE:
    if (!get_string_field(j, name, &side)) return false;
    if (strcmp(side, "left") != 0 && strcmp(side, "right") != 0)
      return type_error(j->e, name, "\"left\" or \"right\"");
    req->truncate_left = strcmp(side, "left") == 0;
    return true;
  case TOKD_F_MESSAGES: return raw_value(j, &req->messages);
  case TOKD_F_TOOLS: return raw_value(j, &req->tools);
  case TOKD_F_DOCUMENTS: return raw_value(j, &req->documents);
  case TOKD_F_CHAT_TEMPLATE_KWARGS: return raw_value(j, &req->chat_template_kwargs);
  case TOKD_F_CHAT_TEMPLATE:
    if (literal(j, "null")) return true;
    return get_string_field(j, name, &req->chat_template);
  case TOKD_F_ADD_GENERATION_PROMPT: return get_bool(j, name, &req->add_generation_prompt);
  case TOKD_F_CONTINUE_FINAL_MESSAGE: return get_bool(j, name, &req->continue_final_message);
  default:
    return skip_value(j, 0);
  }
}

/* The field that holds the input, which a request must have. */
static tokd_field input_field(tokd_endpoint ep)
{
  return ep == EP_TOKENIZE ? TOKD_F_PROMPT
         : ep == EP_DECODE || ep == EP_DETOKENIZE ? TOKD_F_TOKENS
                                                  : TOKD_F_TEXT;
}

static bool check_required(tokd_request *req, tokd_http_error *e)
{
  tokd_field f = input_field(req->ep);
  bool chat = req->given & (1ull << TOKD_F_MESSAGES);
  if (chat && !req->messages.s) {
    tokd_error_set(e, 400, "invalid_type", "messages", "\"messages\" must be a list of message objects");
    return false;
  }
  if (req->ep == EP_CHAT_TOKENIZE || req->ep == EP_APPLY_TEMPLATE || req->ep == EP_RENDER_CHAT)
    f = TOKD_F_MESSAGES;
  if (req->ep == EP_MESSAGES_RENDER || req->ep == EP_MESSAGES_COUNT) f = TOKD_F_MESSAGES;
  /* vLLM's own message for a missing prompt (render.c); Responses' input (providers.c) */
  if (req->ep == EP_RENDER_COMPLETION || req->ep == EP_RESPONSES_COUNT) return true;
  if (chat && f != TOKD_F_MESSAGES) {
    if (req->given & (1ull << f)) {
      tokd_error_set(e, 400, "conflicting_fields", "messages", "send \"%s\" or \"messages\", not both",
                     TOKD_FIELD_NAMES[f]);
      return false;
    }
    /* vLLM's chat default: the template already wrote the special tokens it wants */
    if (!(req->given & (1ull << TOKD_F_ADD_SPECIAL_TOKENS))) req->add_special_tokens = false;
    return true;
  }
  if (!chat && (req->given & (FIELDS_CHAT & ~(1ull << TOKD_F_MESSAGES)))) {
    for (int k = 0; k < TOKD_F__COUNT; k++)
      if ((req->given & (1ull << k)) && (FIELDS_CHAT & (1ull << k))) {
        tokd_error_set(e, 400, "missing_field", "messages", "\"%s\" applies to chat \"messages\", which are missing",
                       TOKD_FIELD_NAMES[k]);
        return false;
      }
  }
  if (f == TOKD_F_MESSAGES && chat) {
    if (!(req->given & (1ull << TOKD_F_ADD_SPECIAL_TOKENS))) req->add_special_tokens = false;
    return true;
  }
  if (req->given & (1ull << f)) return true;
  tokd_error_set(e, 400, "missing_field", TOKD_FIELD_NAMES[f], "missing \"%s\"", TOKD_FIELD_NAMES[f]);
  return false;
}

bool tokd_request_parse_json(tokd_request *req, char *body, size_t len,
                             const tokd_parse_limits *lim, tokd_http_error *e)
{
  jp j = {body, body + len, body, e, false};
  const tokd_route *route = &TOKD_ROUTES[req->ep];
  if (len >= 3 && !memcmp(body, "\xEF\xBB\xBF", 3)) j.p += 3; /* a byte order mark */
  if (!eat(&j, '{')) {
    ws(&j);
    if (j.p < j.end) tokd_error_set(e, 400, "invalid_json", NULL, "the request body must be a JSON object");
    else tokd_error_set(e, 400, "invalid_json", NULL, "the request body is empty; send a JSON object");
    return false;
  }
  if (!eat(&j, '}')) {
    do {
      char *key;
      size_t key_len;
      if (!string(&j, &key, &key_len)) return false;
      if (!eat(&j, ':')) return syntax(&j, "expected ':'");
      tokd_field f = field_of(key, key_len);
      bool known = f < TOKD_F__COUNT && (route->fields & (1ull << f));
      if (!known && !route->lenient) {
        tokd_error_set(e, 400, "unknown_field", key, "unknown field \"%.64s\" for %s", key, route->path);
        return false;
      }
      if (!known) {
        if (!skip_value(&j, 0)) return false;
        continue;
      }
      if (!get_field(&j, f, TOKD_FIELD_NAMES[f], lim, req)) return false;
      req->given |= 1ull << f;
    } while (eat(&j, ','));
    if (!eat(&j, '}')) return syntax(&j, "expected ',' or '}'");
  }
  ws(&j);
  if (j.p < j.end) return syntax(&j, "unexpected data after the JSON object");
  return check_required(req, e);
}

/* ---------------------------------------------------------------------------------------
 * text/plain with the options in the query string
 */
static bool query_bool(const char *name, const char *v, bool *out, tokd_http_error *e)
{
  if (!*v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) *out = true;
  else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) *out = false;
  else {
    tokd_error_set(e, 400, "invalid_value", name, "query parameter \"%s\" must be true or false", name);
    return false;
  }
  return true;
}

static bool query_count(const char *name, const char *v, long long *out, tokd_http_error *e)
{
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || end == v || *end || n < 0 || v[0] == '+' || v[0] == ' ') {
    tokd_error_set(e, 400, "invalid_value", name, "query parameter \"%s\" must be a whole number >= 0", name);
    return false;
  }
  *out = n;
  return true;
}

static bool query_field(tokd_request *req, tokd_field f, const char *name, const char *v,
                        tokd_http_error *e)
{
  size_t cap = 0;
  switch (f) {
  case TOKD_F_ENCODING: req->encoding = v; return true;
  case TOKD_F_MODEL: req->model = v; return true;
  case TOKD_F_ALLOWED_SPECIAL:
    if (!strcmp(v, "all")) req->allowed_kind = SPECIAL_ALL;
    else if (!*v || !strcmp(v, "none")) req->allowed_kind = SPECIAL_NONE;
    else {
      /* comma-separated texts; they point into the copied query value */
      req->allowed_kind = SPECIAL_LIST;
      for (const char *p = v;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!push_text(&req->allowed, &req->n_allowed, &cap, p, n)) return nomem(e);
        if (!comma) break;
        p = comma + 1;
      }
    }
    return true;
  case TOKD_F_DISALLOWED_SPECIAL:
    if (!strcmp(v, "all")) v = "true";
    if (!strcmp(v, "none")) v = "false";
    return query_bool(name, v, &req->check_disallowed, e);
  case TOKD_F_ADD_SPECIAL_TOKENS: return query_bool(name, v, &req->add_special_tokens, e);
  case TOKD_F_SKIP_SPECIAL_TOKENS: return query_bool(name, v, &req->skip_special_tokens, e);
  case TOKD_F_OFFSETS: return query_bool(name, v, &req->offsets, e);
  case TOKD_F_TOKEN_STRINGS: case TOKD_F_RETURN_TOKEN_STRS: return query_bool(name, v, &req->token_strings, e);
  case TOKD_F_BYTES: return query_bool(name, v, &req->bytes_out, e);
  case TOKD_F_STREAM: return query_bool(name, v, &req->stream, e);
  case TOKD_F_TAIL: req->tail = v; return true;
  case TOKD_F_MAX_TOKENS: return query_count(name, v, &req->max_tokens, e);
  case TOKD_F_LIMIT: return query_count(name, v, &req->limit, e);
  case TOKD_F_TRUNCATION_SIDE:
    if (strcmp(v, "left") != 0 && strcmp(v, "right") != 0) {
      tokd_error_set(e, 400, "invalid_value", name, "\"truncation_side\" must be left or right");
      return false;
    }
    req->truncate_left = !strcmp(v, "left");
    return true;
  default:
    tokd_error_set(e, 400, "invalid_value", name, "\"%s\" cannot be given in the query string; send JSON", name);
    return false;
  }
}

bool tokd_request_parse_text(tokd_request *req, char *body, size_t len, const tokd_query *query,
                             size_t n_query, const tokd_parse_limits *lim, tokd_http_error *e)
{
  const tokd_route *route = &TOKD_ROUTES[req->ep];
  tokd_field input = input_field(req->ep);
  for (size_t i = 0; i < n_query; i++) {
    /* ?encoding=a&encoding=b: neither is more right than the other (at most 64 names) */
    for (size_t j = 0; j < i; j++)
      if (!strcmp(query[j].key, query[i].key)) {
        tokd_error_set(e, 400, "duplicate_field", query[i].key, "query parameter \"%.64s\" is given more than once",
                       query[i].key);
        return false;
      }
    tokd_field f = field_of(query[i].key, strlen(query[i].key));
    bool known = f < TOKD_F__COUNT && f != input && (route->fields & (1ull << f));
    if (!known && !route->lenient) {
      tokd_error_set(e, 400, "unknown_field", query[i].key, "unknown query parameter \"%.64s\" for %s",
                     query[i].key, route->path);
      return false;
    }
    if (known && !query_field(req, f, TOKD_FIELD_NAMES[f], query[i].value, e)) return false;
  }
  if (input == TOKD_F_TOKENS) {
    size_t bad = 0;
    tok_err rc = tokd_parse_id_text(body, len, lim->max_ids, &req->ids, &req->n_ids, &bad);
    if (rc == TOK_ENOMEM) return nomem(e);
    if (rc == TOK_ELIMIT) {
      tokd_error_set(e, 413, "too_many_tokens", "tokens", "more than %zu token ids", lim->max_ids);
      return false;
    }
    if (rc != TOK_OK) {
      tokd_error_set(e, 400, "invalid_token", "tokens",
                     "body byte %zu: expected a token id (a whole number below 2^32)", bad);
      return false;
    }
    if (!(req->list_start = malloc(2 * sizeof *req->list_start))) return nomem(e);
    req->list_start[0] = 0;
    req->list_start[1] = req->n_ids;
    req->n_lists = 1;
    return true;
  }
  size_t cap = 0;
  return push_text(&req->texts, &req->n_texts, &cap, body ? body : "", len) || nomem(e);
}

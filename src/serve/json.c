/*
 * json.c — request parsing with cJSON and response writing by hand.
 *
 * The only file that includes cJSON. Traps handled (cJSON 1.7.15):
 *   - numbers are doubles: ids are validated from valuedouble (integral, 0..2^32-1), never
 *     from the saturating valueint;
 *   - "\u0000" inside a string silently truncates it: such bodies are refused with a
 *     pointer to text/plain instead of being tokenized wrongly;
 *   - parsing stops after the first value: trailing garbage is detected and refused;
 *   - deep nesting is cut off by cJSON's CJSON_NESTING_LIMIT (1000) and reported as
 *     malformed JSON rather than recursing further.
 * Responses never go through cJSON: id arrays are written digit by digit into the
 * thread's buffer, which is several times faster than cJSON_Print's "%1.15g" round trip.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

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
  /* messages quote client input (names, field keys) and may be cut mid-character: keep
   * the JSON we write valid UTF-8 */
  size_t len = strlen(e->message), bad;
  while (!tok_utf8_valid(e->message, len, &bad)) e->message[bad] = '?';
}

void tokd_request_free(tokd_request *req)
{
  if (req->json_root) cJSON_Delete(req->json_root);
  free(req->texts);
  free(req->text_lens);
  free(req->ids);
  free(req->list_start);
  free(req->allowed);
  free(req->allowed_lens);
  memset(req, 0, sizeof *req);
}

/* true when the body has a JSON escape \u0000 (an odd number of backslashes before u0000) */
static bool has_escaped_nul(const char *s, size_t len)
{
  for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), "u0000", 5)) != NULL; p += 5) {
    size_t slashes = 0;
    while (p - slashes > s && p[-(long)slashes - 1] == '\\') slashes++;
    if (slashes % 2 == 1) return true;
  }
  return false;
}

static bool get_bool(const cJSON *item, bool *out, tokd_http_error *err)
{
  if (!cJSON_IsBool(item)) {
    tokd_error_set(err, 400, "invalid_type", item->string, "\"%s\" must be true or false",
                   item->string);
    return false;
  }
  *out = cJSON_IsTrue(item);
  return true;
}

static bool get_string(const cJSON *item, const char **out, tokd_http_error *err)
{
  if (!cJSON_IsString(item)) {
    tokd_error_set(err, 400, "invalid_type", item->string, "\"%s\" must be a string", item->string);
    return false;
  }
  *out = item->valuestring;
  return true;
}

static bool get_count(const cJSON *item, long long *out, tokd_http_error *err)
{
  double d = item->valuedouble;
  if (!cJSON_IsNumber(item) || d < 0 || d > 1e15 || d != floor(d)) {
    tokd_error_set(err, 400, "invalid_type", item->string,
                   "\"%s\" must be a whole number >= 0", item->string);
    return false;
  }
  *out = (long long)d;
  return true;
}

static bool get_texts(const cJSON *item, size_t max_batch, tokd_request *req,
                      tokd_http_error *err)
{
  const char *name = item->string;
  req->batch = false;
  if (cJSON_IsString(item)) {
    req->n_texts = 1;
  } else if (cJSON_IsArray(item)) {
    req->batch = true;
    req->n_texts = (size_t)cJSON_GetArraySize(item);
    if (req->n_texts > max_batch) {
      tokd_error_set(err, 413, "batch_too_large", name,
                     "\"%s\" has %zu entries; this server takes at most %zu per request", name,
                     req->n_texts, max_batch);
      return false;
    }
  } else {
    tokd_error_set(err, 400, "invalid_type", name, "\"%s\" must be a string or a list of strings",
                   name);
    return false;
  }
  /* a repeated key replaces the earlier value (the last one wins, as in most parsers) */
  free(req->texts);
  free(req->text_lens);
  req->texts = calloc(req->n_texts + 1, sizeof *req->texts);
  req->text_lens = calloc(req->n_texts + 1, sizeof *req->text_lens);
  if (!req->texts || !req->text_lens) {
    tokd_error_set(err, 503, "out_of_memory", NULL, "out of memory");
    return false;
  }
  if (!req->batch) {
    req->texts[0] = item->valuestring;
    req->text_lens[0] = strlen(item->valuestring);
    return true;
  }
  size_t i = 0;
  for (const cJSON *t = item->child; t; t = t->next, i++) {
    if (!cJSON_IsString(t)) {
      char param[48];
      snprintf(param, sizeof param, "%s[%zu]", name, i);
      tokd_error_set(err, 400, "invalid_type", param, "\"%s\" must be a string", param);
      return false;
    }
    req->texts[i] = t->valuestring;
    req->text_lens[i] = strlen(t->valuestring);
  }
  return true;
}

static bool get_id(const cJSON *t, const char *name, size_t list, size_t i, bool batch,
                   uint32_t *out, tokd_http_error *err)
{
  double d = t->valuedouble;
  if (cJSON_IsNumber(t) && d >= 0 && d <= 4294967295.0 && d == floor(d)) {
    *out = (uint32_t)d;
    return true;
  }
  char param[48];
  if (batch) snprintf(param, sizeof param, "%s[%zu][%zu]", name, list, i);
  else snprintf(param, sizeof param, "%s[%zu]", name, i);
  tokd_error_set(err, 400, "invalid_token", param,
                 "\"%s\" must be a token id: a whole number from 0 to 4294967295", param);
  return false;
}

static bool get_ids(const cJSON *item, size_t max_batch, size_t max_ids, tokd_request *req,
                    tokd_http_error *err)
{
  const char *name = item->string;
  if (!cJSON_IsArray(item)) {
    tokd_error_set(err, 400, "invalid_type", name,
                   "\"%s\" must be a list of token ids or a list of such lists", name);
    return false;
  }
  bool batch = item->child && cJSON_IsArray(item->child);
  size_t n_lists = batch ? (size_t)cJSON_GetArraySize(item) : 1, total = 0;
  if (n_lists > max_batch) {
    tokd_error_set(err, 413, "batch_too_large", name,
                   "\"%s\" has %zu lists; this server takes at most %zu per request", name,
                   n_lists, max_batch);
    return false;
  }
  if (batch) {
    for (const cJSON *l = item->child; l; l = l->next) {
      if (!cJSON_IsArray(l)) {
        tokd_error_set(err, 400, "invalid_type", name,
                       "\"%s\" mixes lists and ids; send a list of ids or a list of lists", name);
        return false;
      }
      total += (size_t)cJSON_GetArraySize(l);
    }
  } else {
    total = (size_t)cJSON_GetArraySize(item);
  }
  if (total > max_ids) {
    tokd_error_set(err, 413, "too_many_tokens", name,
                   "%zu token ids; this server takes at most %zu per request", total, max_ids);
    return false;
  }
  req->batch = batch;
  req->n_lists = n_lists;
  free(req->ids);
  free(req->list_start);
  req->ids = malloc((total + 1) * sizeof *req->ids);
  req->list_start = malloc((n_lists + 1) * sizeof *req->list_start);
  if (!req->ids || !req->list_start) {
    tokd_error_set(err, 503, "out_of_memory", NULL, "out of memory");
    return false;
  }
  size_t at = 0, li = 0;
  const cJSON *list = batch ? item->child : item;
  for (; list && li < n_lists; list = list->next, li++) {
    req->list_start[li] = at;
    size_t i = 0;
    for (const cJSON *t = list->child; t; t = t->next, i++)
      if (!get_id(t, name, li, i, batch, &req->ids[at++], err)) return false;
  }
  req->list_start[n_lists] = at;
  return true;
}

static bool get_special(const cJSON *item, tokd_request *req, tokd_http_error *err)
{
  if (cJSON_IsString(item) && strcmp(item->valuestring, "all") == 0) {
    req->allowed_kind = SPECIAL_ALL;
    return true;
  }
  if (cJSON_IsString(item) && strcmp(item->valuestring, "none") == 0) {
    req->allowed_kind = SPECIAL_NONE;
    return true;
  }
  if (cJSON_IsArray(item)) {
    size_t n = (size_t)cJSON_GetArraySize(item), i = 0;
    if (n > TOK_MAX_SPECIAL) goto bad;
    free(req->allowed);
    free(req->allowed_lens);
    req->allowed = calloc(n + 1, sizeof *req->allowed);
    req->allowed_lens = calloc(n + 1, sizeof *req->allowed_lens);
    if (!req->allowed || !req->allowed_lens) goto bad;
    for (const cJSON *t = item->child; t; t = t->next, i++) {
      if (!cJSON_IsString(t)) goto bad;
      req->allowed[i] = t->valuestring;
      req->allowed_lens[i] = strlen(t->valuestring);
    }
    req->n_allowed = n;
    req->allowed_kind = SPECIAL_LIST;
    return true;
  }
bad:
  tokd_error_set(err, 400, "invalid_type", "allowed_special",
                 "\"allowed_special\" must be \"all\", \"none\" or a list of special-token texts");
  return false;
}

/* Fields each endpoint takes; vLLM's endpoints ignore the rest. */
static bool field_allowed(tokd_endpoint ep, const char *k)
{
  static const char *common[] = {"encoding", "model", NULL};
  static const char *encode[] = {"text", "allowed_special", "disallowed_special", "offsets",
                                 "max_tokens", "truncation_side", "add_special_tokens",
                                 "token_strings", NULL};
  static const char *count[] = {"text", "allowed_special", "disallowed_special", "limit",
                                "add_special_tokens", NULL};
  static const char *decode[] = {"tokens", "bytes", "stream", "tail", "skip_special_tokens", NULL};
  const char **lists[] = {common, ep == EP_ENCODE ? encode : ep == EP_COUNT ? count : decode};
  for (int l = 0; l < 2; l++)
    for (const char **f = lists[l]; *f; f++)
      if (strcmp(*f, k) == 0) return true;
  return false;
}

bool tokd_request_parse_json(tokd_endpoint ep, const char *body, size_t len, size_t max_batch,
                             size_t max_ids, tokd_request *req, tokd_http_error *err)
{
  memset(req, 0, sizeof *req);
  req->max_tokens = -1;
  req->limit = -1;
  req->add_special_tokens = true;
  bool vllm = ep == EP_TOKENIZE || ep == EP_DETOKENIZE;

  if (has_escaped_nul(body, len)) {
    tokd_error_set(err, 400, "unsupported_nul", NULL,
                   "\\u0000 in JSON strings is not supported; send the text as a text/plain "
                   "body instead");
    return false;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!root) {
    size_t pos = end && end >= body ? (size_t)(end - body) : 0;
    tokd_error_set(err, 400, "invalid_json", NULL,
                   "malformed JSON near byte %zu (or nested deeper than %d levels)", pos,
                   CJSON_NESTING_LIMIT);
    return false;
  }
  req->json_root = root;
  while (end && end < body + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
    end++;
  if (end && end < body + len) {
    tokd_error_set(err, 400, "invalid_json", NULL, "unexpected data after the JSON value at byte %zu",
                   (size_t)(end - body));
    return false;
  }
  if (!cJSON_IsObject(root)) {
    tokd_error_set(err, 400, "invalid_json", NULL, "the request body must be a JSON object");
    return false;
  }

  bool have_text = false, have_ids = false;
  for (const cJSON *f = root->child; f; f = f->next) {
    const char *k = f->string;
    bool ok = true;
    if (vllm) {
      if (strcmp(k, "prompt") == 0 && ep == EP_TOKENIZE) {
        have_text = true;
        ok = get_string(f, &(const char *){NULL}, err) && get_texts(f, 1, req, err);
      } else if (strcmp(k, "tokens") == 0 && ep == EP_DETOKENIZE) {
        have_ids = true;
        ok = get_ids(f, 1, max_ids, req, err);
      }
      else if (strcmp(k, "model") == 0)
        ok = cJSON_IsNull(f) || get_string(f, &req->model, err);
      else if (strcmp(k, "add_special_tokens") == 0)
        ok = get_bool(f, &req->add_special_tokens, err);
      else if (strcmp(k, "return_token_strs") == 0 && ep == EP_TOKENIZE)
        ok = cJSON_IsNull(f) || get_bool(f, &req->token_strings, err);
      else if (strcmp(k, "skip_special_tokens") == 0 && ep == EP_DETOKENIZE)
        ok = get_bool(f, &req->skip_special_tokens, err);
      else if (strcmp(k, "messages") == 0) {
        tokd_error_set(err, 400, "unsupported", "messages",
                       "chat \"messages\" are not supported (tokd has no chat templates); send "
                       "\"prompt\"");
        ok = false;
      }
      if (!ok) return false;
      continue;
    }
    if (!field_allowed(ep, k)) {
      tokd_error_set(err, 400, "unknown_field", k, "unknown field \"%s\" for %s", k,
                     TOKD_ENDPOINT_PATHS[ep]);
      return false;
    }
    if (strcmp(k, "text") == 0) {
      have_text = true;
      ok = get_texts(f, max_batch, req, err);
    } else if (strcmp(k, "tokens") == 0) {
      have_ids = true;
      ok = get_ids(f, max_batch, max_ids, req, err);
    } else if (strcmp(k, "encoding") == 0) ok = get_string(f, &req->encoding, err);
    else if (strcmp(k, "model") == 0) ok = get_string(f, &req->model, err);
    else if (strcmp(k, "allowed_special") == 0) ok = get_special(f, req, err);
    else if (strcmp(k, "disallowed_special") == 0) {
      if (cJSON_IsString(f) && (!strcmp(f->valuestring, "all") || !strcmp(f->valuestring, "none")))
        req->check_disallowed = strcmp(f->valuestring, "all") == 0;
      else ok = get_bool(f, &req->check_disallowed, err);
    } else if (strcmp(k, "offsets") == 0) ok = get_bool(f, &req->offsets, err);
    else if (strcmp(k, "add_special_tokens") == 0) ok = get_bool(f, &req->add_special_tokens, err);
    else if (strcmp(k, "skip_special_tokens") == 0) ok = get_bool(f, &req->skip_special_tokens, err);
    else if (strcmp(k, "token_strings") == 0) ok = get_bool(f, &req->token_strings, err);
    else if (strcmp(k, "max_tokens") == 0) ok = get_count(f, &req->max_tokens, err);
    else if (strcmp(k, "limit") == 0) ok = get_count(f, &req->limit, err);
    else if (strcmp(k, "bytes") == 0) ok = get_bool(f, &req->bytes_out, err);
    else if (strcmp(k, "stream") == 0) ok = get_bool(f, &req->stream, err);
    else if (strcmp(k, "tail") == 0) ok = get_string(f, &req->tail, err);
    else if (strcmp(k, "truncation_side") == 0) {
      const char *side = NULL;
      ok = get_string(f, &side, err);
      if (ok && strcmp(side, "left") != 0 && strcmp(side, "right") != 0) {
        tokd_error_set(err, 400, "invalid_value", k, "\"truncation_side\" must be \"left\" or \"right\"");
        ok = false;
      }
      if (ok) req->truncate_left = strcmp(side, "left") == 0;
    }
    if (!ok) return false;
  }
  bool wants_text = ep == EP_ENCODE || ep == EP_COUNT || ep == EP_TOKENIZE;
  if (wants_text && !have_text) {
    const char *field = ep == EP_TOKENIZE ? "prompt" : "text";
    tokd_error_set(err, 400, "missing_field", field, "missing \"%s\"", field);
    return false;
  }
  if (!wants_text && !have_ids) {
    tokd_error_set(err, 400, "missing_field", "tokens", "missing \"tokens\"");
    return false;
  }
  return true;
}

/* ---------------------------------------------------------------------------------------
 * Writing
 */
tok_err tokd_json_lit(tok_buf *out, const char *literal)
{
  return tok_buf_append(out, literal, strlen(literal));
}

tok_err tokd_json_string(tok_buf *out, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  /* worst case every byte becomes \u00XX */
  tok_err rc = tok_buf_reserve(out, len * 6 + 2);
  if (rc != TOK_OK) return rc;
  char *o = out->data + out->len;
  *o++ = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      *o++ = (char)c;
      continue;
    }
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
    }
  }
  *o++ = '"';
  out->len = (size_t)(o - out->data);
  return TOK_OK;
}

tok_err tokd_json_ids(tok_buf *out, const uint32_t *ids, size_t n)
{
  /* 10 digits and a comma per id, plus brackets */
  tok_err rc = tok_buf_reserve(out, n * 11 + 2);
  if (rc != TOK_OK) return rc;
  char *o = out->data + out->len;
  *o++ = '[';
  for (size_t i = 0; i < n; i++) {
    if (i) *o++ = ',';
    uint32_t v = ids[i];
    char tmp[10];
    int k = 0;
    do tmp[k++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (k) *o++ = tmp[--k];
  }
  *o++ = ']';
  out->len = (size_t)(o - out->data);
  return TOK_OK;
}

tok_err tokd_json_uint(tok_buf *out, unsigned long long v)
{
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%llu", v);
  return tok_buf_append(out, tmp, (size_t)n);
}

tok_err tokd_json_error(tok_buf *out, const tokd_http_error *e)
{
  tok_err rc;
  if ((rc = tokd_json_lit(out, "{\"error\":{\"message\":")) ||
      (rc = tokd_json_string(out, e->message, strlen(e->message))) ||
      (rc = tokd_json_lit(out, ",\"type\":")) ||
      (rc = tokd_json_string(out, e->type, strlen(e->type))) ||
      (rc = tokd_json_lit(out, ",\"param\":")))
    return rc;
  rc = e->param[0] ? tokd_json_string(out, e->param, strlen(e->param)) : tokd_json_lit(out, "null");
  if (rc || (rc = tokd_json_lit(out, ",\"code\":")) ||
      (rc = tokd_json_string(out, e->code, strlen(e->code))) || (rc = tokd_json_lit(out, "}}\n")))
    return rc;
  return TOK_OK;
}

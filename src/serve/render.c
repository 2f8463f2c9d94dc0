/*
 * render.c — vLLM's render API, so that a router (llm-d's token producer, an inference
 * gateway) gets the engine's exact prompt ids from tokd instead of a Python vLLM process:
 *
 *   POST /v1/chat/completions/render  ChatCompletionRequest -> one GenerateRequest
 *   POST /v1/completions/render       CompletionRequest -> a list of GenerateRequests
 *   GET  /v1/models                   the model list with each model's max_model_len
 *
 * The contract is vLLM's code, cited where each rule comes from: the GenerateRequest of
 * vllm/entrypoints/serve/disagg/protocol.py, built as serve/render/serving.py builds it;
 * sampling_params as ChatCompletionRequest/CompletionRequest.to_sampling_params make them
 * (openai/chat_completion/protocol.py, openai/completion/protocol.py) and as SamplingParams
 * (vllm/sampling_params.py) serializes: msgspec with omit_defaults, so only fields that
 * differ from their declared default appear, in declaration order, after __post_init__
 * (stop, stop_token_ids and bad_words become lists; skip_reading_prefix_cache false). The
 * prompt's length rules are TokenizeParams' (vllm/renderers/params.py): truncation to
 * truncate_prompt_tokens (from the left unless truncation_side says right), then a prompt
 * longer than max_model_len minus the requested output tokens is refused with vLLM's
 * message. max_tokens is then get_max_tokens': the request's, at most what the context has
 * left. Errors are answered in vLLM's shape (http.c, json.c).
 *
 * Not rendered here: generation_config.json defaults (vLLM's "auto" generation config),
 * multimodal features (always null: tokd is text-only), logprobs, structured outputs,
 * logit_bias, the Anthropic and Responses shapes. README "Render sidecar" lists them.
 *
 * The request parser keeps each sampling field's JSON (tokd_request.raw); they are small
 * and read here with cJSON. The prompt, which may be large, is read the same way once.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "serve/json.h"
#include "serve/server.h"
#include "common/util.h"

/* ---------------------------------------------------------------------------------------
 * Context lengths
 */
int tokd_model_lens_load(tokd_server *srv)
{
  size_t n = tok_registry_count(srv->reg);
  if (!(srv->model_len = calloc(n ? n : 1, sizeof *srv->model_len))) {
    fprintf(stderr, "tokd: out of memory\n");
    return 1;
  }
  const char *spec = srv->cfg.model_max_len;
  for (const char *p = spec; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    char *end = NULL;
    unsigned long long v = eq ? strtoull(eq + 1, &end, 10) : 0;
    const tok_encoding *enc = eq ? tok_registry_find(srv->reg, p, (size_t)(eq - p)) : NULL;
    if (!eq || end != p + len || v == 0 || !enc) {
      fprintf(stderr, "tokd: --model-max-len: expected NAME=N for a loaded model and N > 0, got \"%.*s\"\n",
              (int)(len > 200 ? 200 : len), p);
      return 2;
    }
    for (size_t i = 0; i < n; i++)
      if (tok_registry_at(srv->reg, i) == enc) srv->model_len[i] = v;
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

uint64_t tokd_max_model_len(const tokd_server *srv, const tok_encoding *enc)
{
  for (size_t i = 0; srv->model_len && i < tok_registry_count(srv->reg); i++)
    if (tok_registry_at(srv->reg, i) == enc && srv->model_len[i]) return srv->model_len[i];
  if (srv->cfg.max_model_len) return srv->cfg.max_model_len;
  return tok_encoding_get_info(enc)->max_model_len;
}

/* ---------------------------------------------------------------------------------------
 * Reading the request's fields (vLLM's pydantic types; null is "unset")
 */
typedef struct reader {
  const tokd_request *req;
  tokd_http_error *e;
  cJSON *parsed[TOKD_F__COUNT];
  cJSON *owned; /* lists made from the fields (stop as a list, deduplicated ids) */
} reader;

static void reader_free(reader *rd)
{
  for (int f = 0; f < TOKD_F__COUNT; f++) cJSON_Delete(rd->parsed[f]);
  cJSON_Delete(rd->owned);
}

/* an empty array that lives as long as the reader */
static cJSON *new_list(reader *rd)
{
  if (!rd->owned && !(rd->owned = cJSON_CreateArray())) return NULL;
  cJSON *list = cJSON_CreateArray();
  if (list) cJSON_AddItemToArray(rd->owned, list);
  return list;
}

/* The field's value, NULL when absent or null. false: not JSON cJSON can hold (the
 * parser already checked the syntax, so only memory or depth). */
static bool value(reader *rd, tokd_field f, const cJSON **out)
{
  *out = NULL;
  const tokd_text *t = &rd->req->raw[f];
  if (!t->s) return true;
  if (!rd->parsed[f] && !(rd->parsed[f] = cJSON_ParseWithLength(t->s, t->len))) {
    tokd_error_set(rd->e, 400, "invalid_value", TOKD_FIELD_NAMES[f], "\"%s\" could not be read", TOKD_FIELD_NAMES[f]);
    return false;
  }
  if (!cJSON_IsNull(rd->parsed[f])) *out = rd->parsed[f];
  return true;
}

static bool type_error(reader *rd, tokd_field f, const char *what)
{
  tokd_error_set(rd->e, 400, "invalid_type", TOKD_FIELD_NAMES[f], "\"%s\" must be %s", TOKD_FIELD_NAMES[f], what);
  return false;
}

static bool is_int(const cJSON *v)
{
  return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9.2e18;
}

static bool get_float(reader *rd, tokd_field f, double *out, bool *given)
{
  const cJSON *v;
  if (!value(rd, f, &v)) return false;
  if (given) *given = v != NULL;
  if (!v) return true;
  if (!cJSON_IsNumber(v)) return type_error(rd, f, "a number");
  *out = v->valuedouble;
  return true;
}

static bool get_int(reader *rd, tokd_field f, long long *out, bool *given)
{
  const cJSON *v;
  if (!value(rd, f, &v)) return false;
  if (given) *given = v != NULL;
  if (!v) return true;
  if (!is_int(v)) return type_error(rd, f, "an integer");
  *out = (long long)v->valuedouble;
  return true;
}

static bool get_bool(reader *rd, tokd_field f, bool *out)
{
  const cJSON *v;
  if (!value(rd, f, &v)) return false;
  if (!v) return true;
  if (!cJSON_IsBool(v)) return type_error(rd, f, "true or false");
  *out = cJSON_IsTrue(v);
  return true;
}

/* A list of strings (a string alone when one_string: "stop"), deduplicated when dedup
 * (dict.fromkeys keeps the first); an array, maybe empty, in *out (owned by the reader). */
/* The items of a list kept so far, for dropping repeats in one pass (a body of 4 MiB can
 * hold half a million ids: comparing each with every kept one was minutes of a core). Open
 * addressing over the items' hashes; equal hashes are compared. */
typedef struct kept_set {
  const cJSON **slot;
  size_t mask;
} kept_set;

static bool kept_init(kept_set *k, const cJSON *list)
{
  size_t n = (size_t)cJSON_GetArraySize(list), cap = 16;
  while (cap < 2 * n) cap *= 2;
  k->mask = cap - 1;
  return (k->slot = calloc(cap, sizeof *k->slot)) != NULL;
}

static uint64_t item_hash(const cJSON *item)
{
  uint64_t h = 1469598103934665603ull;
  if (cJSON_IsString(item))
    for (const unsigned char *p = (const unsigned char *)item->valuestring; *p; p++) h = (h ^ *p) * 1099511628211ull;
  else {
    uint64_t bits;
    double d = item->valuedouble == 0 ? 0 : item->valuedouble; /* -0 == 0 */
    memcpy(&bits, &d, sizeof bits);
    h = (h ^ bits) * 1099511628211ull;
  }
  return h ^ h >> 29;
}

static bool same_item(const cJSON *a, const cJSON *b)
{
  return cJSON_IsString(a) ? cJSON_IsString(b) && !strcmp(a->valuestring, b->valuestring)
                           : !cJSON_IsString(b) && a->valuedouble == b->valuedouble;
}

/* true when an equal item was kept already; otherwise it is now */
static bool kept_before(kept_set *k, const cJSON *item)
{
  for (size_t i = item_hash(item) & k->mask;; i = (i + 1) & k->mask) {
    if (!k->slot[i]) {
      k->slot[i] = item;
      return false;
    }
    if (same_item(k->slot[i], item)) return true;
  }
}

static bool get_strings(reader *rd, tokd_field f, bool one_string, bool dedup, cJSON **out)
{
  const cJSON *v;
  *out = NULL;
  if (!value(rd, f, &v)) return false;
  cJSON *list = new_list(rd);
  if (!list) return tokd_too_large(rd->e);
  *out = list;
  if (!v) return true;
  if (cJSON_IsString(v) && one_string) return cJSON_AddItemToArray(list, cJSON_CreateString(v->valuestring)), true;
  if (!cJSON_IsArray(v)) return type_error(rd, f, one_string ? "a string or a list of strings" : "a list of strings");
  kept_set kept = {0};
  if (dedup && !kept_init(&kept, v)) return tokd_too_large(rd->e);
  const cJSON *item;
  bool ok = true;
  cJSON_ArrayForEach(item, v) {
    if (!cJSON_IsString(item)) {
      ok = type_error(rd, f, one_string ? "a string or a list of strings" : "a list of strings");
      break;
    }
    if (!dedup || !kept_before(&kept, item)) cJSON_AddItemToArray(list, cJSON_CreateString(item->valuestring));
  }
  free(kept.slot);
  return ok;
}

static bool get_ints(reader *rd, tokd_field f, bool dedup, cJSON **out, bool *given)
{
  const cJSON *v;
  *out = NULL;
  if (!value(rd, f, &v)) return false;
  *given = v != NULL;
  cJSON *list = new_list(rd);
  if (!list) return tokd_too_large(rd->e);
  *out = list;
  if (!v) return true;
  if (!cJSON_IsArray(v)) return type_error(rd, f, "a list of integers");
  kept_set kept = {0};
  if (dedup && !kept_init(&kept, v)) return tokd_too_large(rd->e);
  const cJSON *item;
  bool ok = true;
  cJSON_ArrayForEach(item, v) {
    if (!is_int(item)) {
      ok = type_error(rd, f, "a list of integers");
      break;
    }
    if (!dedup || !kept_before(&kept, item)) cJSON_AddItemToArray(list, cJSON_CreateNumber(item->valuedouble));
  }
  free(kept.slot);
  return ok;
}

/* Python's repr of a float, for messages */
static const char *pyfloat(char *buf, size_t cap, double v)
{
  tok_buf b = {0};
  if (tokd_json_double(&b, v) == TOK_OK) snprintf(buf, cap, "%.*s", (int)b.len, b.data);
  else snprintf(buf, cap, "%g", v);
  tok_buf_free(&b);
  return buf;
}

/* ---------------------------------------------------------------------------------------
 * SamplingParams (vllm/sampling_params.py), from the request
 */
typedef struct sampling {
  long long n, top_k, min_tokens, max_tokens, seed, priority;
  double presence_penalty, frequency_penalty, repetition_penalty, temperature, top_p, min_p;
  bool has_seed, has_allowed, has_req_max, ignore_eos, skip_special_tokens, spaces_between,
      include_stop_str, stream, use_beam_search, truncate_left, has_truncate;
  long long req_max;      /* the request's max output tokens (has_req_max) */
  long long truncate;     /* truncate_prompt_tokens (has_truncate) */
  const char *max_param;  /* "max_tokens" or "max_completion_tokens", for messages */
  cJSON *stop, *stop_token_ids, *bad_words, *allowed_token_ids;
  const cJSON *stream_options, *kv_transfer_params;
  const char *cache_salt;
  size_t output_text_buffer_length;
} sampling;

static bool read_sampling(reader *rd, bool chat, sampling *s)
{
  const tokd_request *req = rd->req;
  tokd_http_error *e = rd->e;
  *s = (sampling){.n = 1, .repetition_penalty = 1.0, .temperature = 1.0, .top_p = 1.0,
                  .skip_special_tokens = true, .spaces_between = true, .truncate_left = true,
                  .max_param = "max_tokens"};
  bool given;
  const cJSON *v;
  /* CompletionRequest.max_tokens defaults to 16; ChatCompletionRequest's to None, and
   * max_completion_tokens wins over it */
  if (!chat) {
    s->has_req_max = true;
    s->req_max = 16;
  }
  if (!get_int(rd, TOKD_F_MAX_TOKENS, &s->req_max, &given)) return false;
  if (req->given & (1ull << TOKD_F_MAX_TOKENS)) s->has_req_max = given; /* null: None */
  if (chat) {
    long long mct;
    if (!get_int(rd, TOKD_F_MAX_COMPLETION_TOKENS, &mct, &given)) return false;
    if (given) {
      s->has_req_max = true;
      s->req_max = mct;
      s->max_param = "max_completion_tokens";
    }
  }
  if (!get_int(rd, TOKD_F_TRUNCATE_PROMPT_TOKENS, &s->truncate, &s->has_truncate)) return false;
  if (s->has_truncate && s->truncate < -1) {
    tokd_error_set(e, 400, "invalid_value", "truncate_prompt_tokens", "\"truncate_prompt_tokens\" must be >= -1");
    return false;
  }
  if (!value(rd, TOKD_F_TRUNCATION_SIDE, &v)) return false;
  if (v) {
    if (!cJSON_IsString(v) || (strcmp(v->valuestring, "left") && strcmp(v->valuestring, "right")))
      return type_error(rd, TOKD_F_TRUNCATION_SIDE, "\"left\" or \"right\"");
    s->truncate_left = !strcmp(v->valuestring, "left");
  }
  /* the request's value, else the OpenAI default (_DEFAULT_SAMPLING_PARAMS) */
  if (!get_int(rd, TOKD_F_N, &s->n, NULL) || !get_float(rd, TOKD_F_PRESENCE_PENALTY, &s->presence_penalty, NULL) ||
      !get_float(rd, TOKD_F_FREQUENCY_PENALTY, &s->frequency_penalty, NULL) ||
      !get_float(rd, TOKD_F_REPETITION_PENALTY, &s->repetition_penalty, NULL) ||
      !get_float(rd, TOKD_F_TEMPERATURE, &s->temperature, NULL) || !get_float(rd, TOKD_F_TOP_P, &s->top_p, NULL) ||
      !get_int(rd, TOKD_F_TOP_K, &s->top_k, NULL) || !get_float(rd, TOKD_F_MIN_P, &s->min_p, NULL) ||
      !get_int(rd, TOKD_F_SEED, &s->seed, &s->has_seed) || !get_bool(rd, TOKD_F_IGNORE_EOS, &s->ignore_eos) ||
      !get_int(rd, TOKD_F_MIN_TOKENS, &s->min_tokens, NULL) ||
      !get_bool(rd, TOKD_F_SKIP_SPECIAL_TOKENS, &s->skip_special_tokens) ||
      !get_bool(rd, TOKD_F_SPACES_BETWEEN_SPECIAL_TOKENS, &s->spaces_between) ||
      !get_bool(rd, TOKD_F_INCLUDE_STOP_STR_IN_OUTPUT, &s->include_stop_str) ||
      !get_bool(rd, TOKD_F_STREAM, &s->stream) || !get_bool(rd, TOKD_F_USE_BEAM_SEARCH, &s->use_beam_search) ||
      !get_int(rd, TOKD_F_PRIORITY, &s->priority, NULL) ||
      !get_strings(rd, TOKD_F_STOP, true, false, &s->stop) ||
      !get_strings(rd, TOKD_F_BAD_WORDS, false, true, &s->bad_words) ||
      !get_ints(rd, TOKD_F_STOP_TOKEN_IDS, true, &s->stop_token_ids, &given) ||
      !get_ints(rd, TOKD_F_ALLOWED_TOKEN_IDS, false, &s->allowed_token_ids, &s->has_allowed))
    return false;
  if (!value(rd, TOKD_F_STREAM_OPTIONS, &s->stream_options)) return false;
  if (s->stream_options && !cJSON_IsObject(s->stream_options)) return type_error(rd, TOKD_F_STREAM_OPTIONS, "an object");
  if (s->stream_options && !s->stream) {
    tokd_error_set(e, 400, "invalid_value", "stream_options", "Stream options can only be defined when `stream=True`.");
    return false;
  }
  if (!value(rd, TOKD_F_KV_TRANSFER_PARAMS, &s->kv_transfer_params)) return false;
  if (s->kv_transfer_params && !cJSON_IsObject(s->kv_transfer_params))
    return type_error(rd, TOKD_F_KV_TRANSFER_PARAMS, "an object");
  if (!value(rd, TOKD_F_CACHE_SALT, &v)) return false;
  if (v && (!cJSON_IsString(v) || !v->valuestring[0])) { /* check_cache_salt_support: null passes */
    tokd_error_set(e, 400, "invalid_value", "cache_salt", "Parameter 'cache_salt' must be a non-empty string if provided.");
    return false;
  }
  if (v) s->cache_salt = v->valuestring;
  if (s->use_beam_search) {
    tokd_error_set(e, 400, "invalid_value", "use_beam_search", "Beam search is not supported by the render endpoint");
    return false;
  }
  return true;
}

/* SamplingParams.__post_init__ and _verify_args, with vLLM's messages; max_tokens is set */
static bool finish_sampling(sampling *s, tokd_http_error *e)
{
  char a[40];
  if (0 < s->temperature && s->temperature < 1e-2) s->temperature = 1e-2;
  if (s->has_seed && s->seed == -1) s->has_seed = false;
  const cJSON *k;
  size_t longest = 0;
  cJSON_ArrayForEach(k, s->stop) {
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)k->valuestring; *p; p++) chars += (*p & 0xC0) != 0x80;
    if (chars > longest) longest = chars;
    if (!k->valuestring[0]) {
      tokd_error_set(e, 400, "invalid_value", "stop", "stop cannot contain an empty string.");
      return false;
    }
  }
  if (longest && !s->include_stop_str) s->output_text_buffer_length = longest - 1;
  const char *msg = NULL, *param = NULL;
  char text[200];
  if (s->n < 1) snprintf(text, sizeof text, "n must be at least 1, got %lld.", s->n), msg = text, param = "n";
  else if (!(s->presence_penalty >= -2 && s->presence_penalty <= 2))
    snprintf(text, sizeof text, "presence_penalty must be in [-2, 2], got %s.", pyfloat(a, sizeof a, s->presence_penalty)), msg = text;
  else if (!(s->frequency_penalty >= -2 && s->frequency_penalty <= 2))
    snprintf(text, sizeof text, "frequency_penalty must be in [-2, 2], got %s.", pyfloat(a, sizeof a, s->frequency_penalty)), msg = text;
  else if (!(s->repetition_penalty > 0))
    snprintf(text, sizeof text, "repetition_penalty must be greater than zero, got %s.", pyfloat(a, sizeof a, s->repetition_penalty)), msg = text;
  else if (s->temperature < 0)
    snprintf(text, sizeof text, "temperature must be non-negative, got %s.", pyfloat(a, sizeof a, s->temperature)), msg = text, param = "temperature";
  else if (s->temperature > 2)
    snprintf(text, sizeof text, "temperature must be in [0, 2], got %s.", pyfloat(a, sizeof a, s->temperature)), msg = text, param = "temperature";
  else if (!(s->top_p > 0 && s->top_p <= 1))
    snprintf(text, sizeof text, "top_p must be in (0, 1], got %s.", pyfloat(a, sizeof a, s->top_p)), msg = text, param = "top_p";
  else if (s->top_k < -1)
    snprintf(text, sizeof text, "top_k must be 0 (disable), or at least 1, got %lld.", s->top_k), msg = text;
  else if (!(s->min_p >= 0 && s->min_p <= 1))
    snprintf(text, sizeof text, "min_p must be in [0, 1], got %s.", pyfloat(a, sizeof a, s->min_p)), msg = text;
  else if (s->max_tokens < 1)
    snprintf(text, sizeof text, "max_tokens must be at least 1, got %lld.", s->max_tokens), msg = text, param = "max_tokens";
  else if (s->min_tokens < 0)
    snprintf(text, sizeof text, "min_tokens must be greater than or equal to 0, got %lld.", s->min_tokens), msg = text;
  else if (s->min_tokens > s->max_tokens)
    snprintf(text, sizeof text, "min_tokens must be less than or equal to max_tokens=%lld, got %lld.", s->max_tokens,
             s->min_tokens), msg = text;
  cJSON_ArrayForEach(k, s->bad_words) if (!msg && !k->valuestring[0])
    snprintf(text, sizeof text, "bad_words cannot contain an empty string."), msg = text;
  if (!msg && s->temperature < 1e-5) { /* greedy */
    s->top_p = 1.0, s->top_k = 0, s->min_p = 0.0;
    if (s->n > 1) snprintf(text, sizeof text, "n must be 1 when using greedy sampling, got %lld.", s->n), msg = text;
  }
  if (msg) {
    tokd_error_set(e, 400, "invalid_value", param, "%s", msg);
    return false;
  }
  return true;
}

/* ---------------------------------------------------------------------------------------
 * Writing: compact JSON as FastAPI's JSONResponse writes it (json.dumps, separators
 * (",", ":"), ensure_ascii false)
 */
#define W(x)                                                                                  \
  do {                                                                                        \
    if ((x) != TOK_OK) return tokd_too_large(e);                                             \
  } while (0)

/* a JSON value the client sent, written back compactly; cJSON holds numbers as doubles,
 * so a whole number is written as an integer (Python would keep 1.0 as 1.0) */
static bool write_json(tok_buf *out, const cJSON *v, tokd_http_error *e)
{
  if (cJSON_IsNull(v)) W(tokd_json_lit(out, "null"));
  else if (cJSON_IsTrue(v)) W(tokd_json_lit(out, "true"));
  else if (cJSON_IsFalse(v)) W(tokd_json_lit(out, "false"));
  else if (cJSON_IsString(v)) W(tokd_json_string(out, v->valuestring, strlen(v->valuestring)));
  else if (cJSON_IsNumber(v)) {
    if (is_int(v) && fabs(v->valuedouble) < 9007199254740992.0) {
      char b[32];
      snprintf(b, sizeof b, "%lld", (long long)v->valuedouble);
      W(tokd_json_lit(out, b));
    } else {
      W(tokd_json_double(out, v->valuedouble));
    }
  } else {
    bool obj = cJSON_IsObject(v);
    W(tokd_json_lit(out, obj ? "{" : "["));
    const cJSON *c;
    bool first = true;
    cJSON_ArrayForEach(c, v) {
      if (!first) W(tokd_json_lit(out, ","));
      first = false;
      if (obj) {
        W(tokd_json_string(out, c->string, strlen(c->string)));
        W(tokd_json_lit(out, ":"));
      }
      if (!write_json(out, c, e)) return false;
    }
    W(tokd_json_lit(out, obj ? "}" : "]"));
  }
  return true;
}

/* ,"name": (the first without the comma) */
static tok_err key(tok_buf *out, bool *first, const char *name)
{
  tok_err rc = tokd_json_lit(out, *first ? "\"" : ",\"");
  *first = false;
  if (rc == TOK_OK) rc = tokd_json_lit(out, name);
  if (rc == TOK_OK) rc = tokd_json_lit(out, "\":");
  return rc;
}

static tok_err int_lit(tok_buf *out, long long v)
{
  char b[32];
  snprintf(b, sizeof b, "%lld", v);
  return tokd_json_lit(out, b);
}

/* msgspec's omit_defaults: a field appears only when it differs from its default, in the
 * order SamplingParams declares them */
static bool write_sampling(tok_buf *out, const sampling *s, tokd_http_error *e)
{
  bool first = true;
#define FLT(name, val, dflt)                                                                  \
  if ((val) != (dflt)) {                                                                      \
    W(key(out, &first, name));                                                                \
    W(tokd_json_double(out, val));                                                            \
  }
#define INT(name, val, dflt)                                                                  \
  if ((val) != (dflt)) {                                                                      \
    W(key(out, &first, name));                                                                \
    W(int_lit(out, val));                                                                     \
  }
#define LIT(name, cond, text)                                                                 \
  if (cond) {                                                                                 \
    W(key(out, &first, name));                                                                \
    W(tokd_json_lit(out, text));                                                              \
  }
  W(tokd_json_lit(out, "{"));
  INT("n", s->n, 1);
  FLT("presence_penalty", s->presence_penalty, 0.0);
  FLT("frequency_penalty", s->frequency_penalty, 0.0);
  FLT("repetition_penalty", s->repetition_penalty, 1.0);
  FLT("temperature", s->temperature, 1.0);
  FLT("top_p", s->top_p, 1.0);
  INT("top_k", s->top_k, 0);
  FLT("min_p", s->min_p, 0.0);
  if (s->has_seed) {
    W(key(out, &first, "seed"));
    W(int_lit(out, s->seed));
  }
  /* stop and stop_token_ids are None by default and lists after __post_init__: always */
  W(key(out, &first, "stop"));
  if (!write_json(out, s->stop, e)) return false;
  W(key(out, &first, "stop_token_ids"));
  if (!write_json(out, s->stop_token_ids, e)) return false;
  LIT("ignore_eos", s->ignore_eos, "true");
  INT("max_tokens", s->max_tokens, 16);
  INT("min_tokens", s->min_tokens, 0);
  LIT("skip_special_tokens", !s->skip_special_tokens, "false");
  LIT("spaces_between_special_tokens", !s->spaces_between, "false");
  LIT("include_stop_str_in_output", s->include_stop_str, "true");
  /* RequestOutputKind: DELTA (1) when streamed, FINAL_ONLY (2) otherwise */
  LIT("output_kind", true, s->stream ? "1" : "2");
  LIT("skip_clone", true, "true"); /* to_sampling_params: created fresh per request */
  INT("output_text_buffer_length", (long long)s->output_text_buffer_length, 0);
  if (s->has_allowed) {
    W(key(out, &first, "allowed_token_ids"));
    if (!write_json(out, s->allowed_token_ids, e)) return false;
  }
  if (s->kv_transfer_params && cJSON_GetArraySize(s->kv_transfer_params)) {
    W(key(out, &first, "extra_args")); /* kv_transfer_params travel in extra_args */
    W(tokd_json_lit(out, "{\"kv_transfer_params\":"));
    if (!write_json(out, s->kv_transfer_params, e)) return false;
    W(tokd_json_lit(out, "}"));
  }
  W(key(out, &first, "bad_words"));
  if (!write_json(out, s->bad_words, e)) return false;
  LIT("skip_reading_prefix_cache", true, "false"); /* None by default, false after __post_init__ */
  W(tokd_json_lit(out, "}"));
  return true;
#undef FLT
#undef INT
#undef LIT
}

/* vllm.utils.random_uuid(): uuid4().hex */
static void random_hex(char out[33])
{
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)((unsigned long long)ts.tv_nsec >> (i % 8 * 8) ^ i * 131u);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  for (size_t i = 0; i < sizeof b; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

bool tokd_render_fits(const tokd_server *srv, const tok_encoding *enc, size_t n, long long max_output,
                      tokd_http_error *e)
{
  long long mml = (long long)tokd_max_model_len(srv, enc), max_input = mml - max_output;
  if (!mml || (long long)n <= max_input) return true;
  tokd_error_set(e, 400, "invalid_value", "input_tokens",
                 "You passed %zu input tokens and requested %lld output tokens. However, the model's "
                 "context length is only %lld tokens, resulting in a maximum input length of %lld "
                 "tokens. Please reduce the length of the input prompt.", n, max_output, mml, max_input);
  return false;
}

/* One prompt's ids: truncated and checked against the context (TokenizeParams), then the
 * GenerateRequest written. */
static bool write_generate(const tokd_server *srv, const tokd_request *req, const tok_encoding *enc,
                           const char *id_prefix, const uint32_t *ids, size_t n, sampling *s, tok_buf *out,
                           tokd_http_error *e)
{
  long long mml = (long long)tokd_max_model_len(srv, enc);
  long long max_output = s->has_req_max && s->req_max > 0 ? s->req_max : 0;
  long long max_input = mml ? mml - max_output : -1;
  if (mml && max_output > mml) {
    /* TokenizeParams.__post_init__, its message as vLLM writes it (no space before
     * "cannot", and the f-string's {max_total_tokens=}) */
    tokd_error_set(e, 400, "invalid_value", s->max_param,
                   "%s=%lldcannot be greater than max_model_len=max_total_tokens=%lld. Please request fewer "
                   "output tokens.", s->max_param, max_output, mml);
    return false;
  }
  if (s->has_truncate) {
    long long t = s->truncate < 0 ? max_input : s->truncate;
    if (mml && t > max_input) {
      tokd_error_set(e, 400, "invalid_value", "truncate_prompt_tokens",
                     "truncate_prompt_tokens=%lld cannot be greater than max_model_len - %s = %lld. "
                     "Please request a smaller truncation size.", s->truncate, s->max_param, max_input);
      return false;
    }
    if (t >= 0 && (size_t)t < n) {
      if (s->truncate_left) ids += n - (size_t)t;
      n = (size_t)t;
    }
  }
  if (!tokd_render_fits(srv, enc, n, max_output, e)) return false;
  if (n == 0) {
    tokd_error_set(e, 400, "invalid_value", NULL, "No token_ids rendered");
    return false;
  }
  /* get_max_tokens: the request's, at most what the context has left */
  if (mml) s->max_tokens = s->has_req_max ? (s->req_max < mml - (long long)n ? s->req_max : mml - (long long)n) : mml - (long long)n;
  else s->max_tokens = s->has_req_max ? s->req_max : 16;
  if (!finish_sampling(s, e)) return false;
  char uuid[33];
  random_hex(uuid);
  W(tokd_json_lit(out, "{\"request_id\":\""));
  W(tokd_json_lit(out, id_prefix));
  W(tokd_json_lit(out, uuid));
  W(tokd_json_lit(out, "\",\"token_ids\":"));
  W(tokd_json_ids(out, ids, n));
  W(tokd_json_lit(out, ",\"features\":null,\"sampling_params\":"));
  if (!write_sampling(out, s, e)) return false;
  W(tokd_json_lit(out, ",\"model\":"));
  W(req->model ? tokd_json_string(out, req->model, strlen(req->model)) : tokd_json_lit(out, "null"));
  W(tokd_json_lit(out, s->stream ? ",\"stream\":true,\"stream_options\":" : ",\"stream\":false,\"stream_options\":"));
  if (s->stream) {
    /* StreamOptions: include_usage (default true), continuous_usage_stats (default false) */
    const cJSON *iu = s->stream_options ? cJSON_GetObjectItemCaseSensitive(s->stream_options, "include_usage") : NULL;
    const cJSON *cu = s->stream_options ? cJSON_GetObjectItemCaseSensitive(s->stream_options, "continuous_usage_stats") : NULL;
    W(tokd_json_lit(out, "{\"include_usage\":"));
    W(tokd_json_lit(out, cJSON_IsNull(iu) ? "null" : iu && cJSON_IsFalse(iu) ? "false" : "true"));
    W(tokd_json_lit(out, ",\"continuous_usage_stats\":"));
    W(tokd_json_lit(out, cJSON_IsNull(cu) ? "null" : cu && cJSON_IsTrue(cu) ? "true" : "false"));
    W(tokd_json_lit(out, "}"));
  } else {
    W(tokd_json_lit(out, "null"));
  }
  W(tokd_json_lit(out, ",\"cache_salt\":"));
  W(s->cache_salt ? tokd_json_string(out, s->cache_salt, strlen(s->cache_salt)) : tokd_json_lit(out, "null"));
  W(tokd_json_lit(out, ",\"priority\":"));
  W(int_lit(out, s->priority));
  /* serving.py does not pass kv_transfer_params on: the field keeps its default */
  W(tokd_json_lit(out, ",\"kv_transfer_params\":null}"));
  return true;
}

/* ---------------------------------------------------------------------------------------
 * Handlers
 */
static bool encode_text(const tokd_server *srv, tokd_worker *w, const tok_encoding *enc, const char *text,
                        size_t len, bool add_special, const char *what, tok_encode_result *r, tokd_http_error *e)
{
  tok_special_set set;
  tok_special_set_all(enc, &set); /* Hugging Face's encode: special-token text is special */
  /* a router renders every request of a conversation: the history up to its last special
   * token comes from the prefix cache */
  tok_encode_opts opts = {.allowed_special = &set, .add_special_tokens = add_special,
                          .prefix_cache = srv->prefix_cache};
  tok_error te;
  if (tok_encode(enc, w->scratch, text, len, &opts, r, &te) != TOK_OK) {
    tokd_core_error(e, &te, what);
    return false;
  }
  return true;
}

/* ChatCompletionRequest.build_chat_params: reasoning_effort reaches the template as a
 * variable, and turns enable_thinking on or off ("none") unless chat_template_kwargs sets
 * it (templates such as Qwen3's and Gemma 4's read enable_thinking). *out is req, its
 * kwargs replaced by the merged ones (owned by the reader). */
static bool reasoning_kwargs(reader *rd, const tokd_request *req, tokd_request *out)
{
  *out = *req;
  const cJSON *effort;
  if (!value(rd, TOKD_F_REASONING_EFFORT, &effort)) return false;
  if (!effort) return true;
  static const char *const levels[] = {"none", "minimal", "low", "medium", "high", "xhigh", "max"};
  bool known = false;
  for (size_t i = 0; cJSON_IsString(effort) && i < sizeof levels / sizeof *levels; i++)
    known |= !strcmp(effort->valuestring, levels[i]);
  if (!known) return type_error(rd, TOKD_F_REASONING_EFFORT, "one of none, minimal, low, medium, high, xhigh, max");
  cJSON *kw = req->chat_template_kwargs.s ? cJSON_ParseWithLength(req->chat_template_kwargs.s, req->chat_template_kwargs.len)
                                          : cJSON_CreateObject();
  if (!cJSON_IsObject(kw)) {
    cJSON_Delete(kw);
    return type_error(rd, TOKD_F_CHAT_TEMPLATE_KWARGS, "an object");
  }
  if (!rd->owned) rd->owned = cJSON_CreateArray();
  cJSON_AddItemToArray(rd->owned, kw); /* freed with the reader */
  if (!cJSON_GetObjectItemCaseSensitive(kw, "reasoning_effort"))
    cJSON_AddStringToObject(kw, "reasoning_effort", effort->valuestring);
  if (!cJSON_GetObjectItemCaseSensitive(kw, "enable_thinking"))
    cJSON_AddBoolToObject(kw, "enable_thinking", strcmp(effort->valuestring, "none") != 0);
  char *text = cJSON_PrintUnformatted(kw);
  if (!text) return tokd_too_large(rd->e);
  /* kept as a string item of the reader so that it is freed with it */
  cJSON *holder = cJSON_CreateString(text);
  free(text);
  if (!holder) return tokd_too_large(rd->e);
  cJSON_AddItemToArray(rd->owned, holder);
  out->chat_template_kwargs = (tokd_text){holder->valuestring, strlen(holder->valuestring)};
  return true;
}

/* POST /v1/chat/completions/render, /v1/completions/render (and /v1/messages/render with
 * the request converted, providers.c) */
bool tokd_handle_render(const tokd_server *srv, tokd_worker *w, const tokd_request *req, tok_buf *out,
                        unsigned long long *tokens, tokd_http_error *e)
{
  bool chat = req->ep != EP_RENDER_COMPLETION;
  reader rd = {.req = req, .e = e};
  sampling s;
  const tok_encoding *enc;
  bool ok = false;
  if (!read_sampling(&rd, chat, &s) || !tokd_resolve_encoding(srv, req, &enc, e)) goto done;
  if (chat) {
    tok_encode_result r;
    tokd_request with_effort;
    if (!reasoning_kwargs(&rd, req, &with_effort)) goto done;
    req = &with_effort;
    if (!tokd_render_chat(srv, w, req, enc, out->limit, e) ||
        !encode_text(srv, w, enc, w->chat.data ? w->chat.data : "", w->chat.len, req->add_special_tokens,
                     "messages", &r, e))
      goto done;
    ok = write_generate(srv, req, enc, "chatcmpl-", r.ids, r.len, &s, out, e);
    *tokens = r.len;
    goto done;
  }
  /* CompletionRequest.prompt: a string, strings, token ids, or lists of them */
  const cJSON *prompt;
  if (!value(&rd, TOKD_F_PROMPT, &prompt)) goto done;
  bool ids_only = cJSON_IsArray(prompt) && cJSON_GetArraySize(prompt) > 0 && cJSON_IsNumber(prompt->child);
  bool lists = cJSON_IsArray(prompt) && cJSON_GetArraySize(prompt) > 0 && cJSON_IsArray(prompt->child);
  if (!prompt || (cJSON_IsArray(prompt) && !cJSON_GetArraySize(prompt))) {
    tokd_error_set(e, 400, "missing_field", "prompt", "Either prompt or prompt_embeds must be provided and non-empty.");
    goto done;
  }
  if (tokd_json_lit(out, "[") != TOK_OK) {
    tokd_too_large(e);
    goto done;
  }
  size_t k = 0;
  for (const cJSON *p = cJSON_IsArray(prompt) && !ids_only ? prompt->child : prompt; p; p = ids_only || !cJSON_IsArray(prompt) ? NULL : p->next, k++) {
    char what[32];
    snprintf(what, sizeof what, cJSON_IsArray(prompt) && !ids_only ? "prompt[%zu]" : "prompt", k);
    if (k && tokd_json_lit(out, ",") != TOK_OK) {
      tokd_too_large(e);
      goto done;
    }
    sampling one = s; /* max_tokens is per prompt */
    if (cJSON_IsString(p) && !lists) {
      tok_encode_result r;
      if (!encode_text(srv, w, enc, p->valuestring, strlen(p->valuestring), req->add_special_tokens, what, &r, e) ||
          !write_generate(srv, req, enc, "cmpl-", r.ids, r.len, &one, out, e))
        goto done;
      *tokens += r.len;
      continue;
    }
    const cJSON *list = ids_only ? prompt : p;
    if (!cJSON_IsArray(list) || (lists && !cJSON_IsArray(p)) || (!lists && !ids_only && !cJSON_IsString(p))) {
      tokd_error_set(e, 400, "invalid_type", "prompt", "\"prompt\" must be a string, a list of strings, a list of token ids or a list of such lists");
      goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(list);
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
      tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
      goto done;
    }
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, list) {
      if (!is_int(t) || t->valuedouble < 0 || t->valuedouble > 4294967295.0) {
        free(ids);
        tokd_error_set(e, 400, "invalid_type", "prompt", "%s: token ids must be integers >= 0", what);
        goto done;
      }
      ids[i++] = (uint32_t)t->valuedouble;
    }
    bool wrote = write_generate(srv, req, enc, "cmpl-", ids, n, &one, out, e);
    free(ids);
    if (!wrote) goto done;
    *tokens += n;
  }
  if (tokd_json_lit(out, "]") != TOK_OK) {
    tokd_too_large(e);
    goto done;
  }
  ok = true;
done:
  reader_free(&rd);
  return ok;
}

/* GET /v1/models: vLLM's ModelList of ModelCards (openai/engine/protocol.py), one per
 * loaded tokenizer, each with one ModelPermission as show_available_models gives it */
bool tokd_handle_models(const tokd_server *srv, tokd_worker *w, const tokd_request *req, tok_buf *out,
                        unsigned long long *tokens, tokd_http_error *e)
{
  (void)w, (void)req, (void)tokens;
  char created[32], uuid[33];
  snprintf(created, sizeof created, "%lld", (long long)time(NULL));
  W(tokd_json_lit(out, "{\"object\":\"list\",\"data\":["));
  for (size_t i = 0; i < tok_registry_count(srv->reg); i++) {
    const tok_encoding *enc = tok_registry_at(srv->reg, i);
    const tok_encoding_info *info = tok_encoding_get_info(enc);
    /* root: the model's path (vLLM: what `vllm serve` was given); a directory's, not its
     * tokenizer.json's */
    size_t root_len = strlen(info->source);
    static const char tj[] = "/tokenizer.json";
    if (root_len > sizeof tj - 1 && !strcmp(info->source + root_len - (sizeof tj - 1), tj)) root_len -= sizeof tj - 1;
    if (i) W(tokd_json_lit(out, ","));
    W(tokd_json_lit(out, "{\"id\":"));
    W(tokd_json_string(out, info->name, strlen(info->name)));
    W(tokd_json_lit(out, ",\"object\":\"model\",\"created\":"));
    W(tokd_json_lit(out, created));
    W(tokd_json_lit(out, ",\"owned_by\":\"vllm\",\"root\":"));
    W(tokd_json_string(out, info->source, root_len));
    W(tokd_json_lit(out, ",\"parent\":null,\"max_model_len\":"));
    uint64_t mml = tokd_max_model_len(srv, enc);
    W(mml ? tokd_json_uint(out, mml) : tokd_json_lit(out, "null"));
    random_hex(uuid);
    W(tokd_json_lit(out, ",\"permission\":[{\"id\":\"modelperm-"));
    W(tokd_json_lit(out, uuid));
    W(tokd_json_lit(out, "\",\"object\":\"model_permission\",\"created\":"));
    W(tokd_json_lit(out, created));
    W(tokd_json_lit(out, ",\"allow_create_engine\":false,\"allow_sampling\":true,\"allow_logprobs\":true,"
                         "\"allow_search_indices\":false,\"allow_view\":true,\"allow_fine_tuning\":false,"
                         "\"organization\":\"*\",\"group\":null,\"is_blocking\":false}]}"));
  }
  W(tokd_json_lit(out, "]}"));
  return true;
}

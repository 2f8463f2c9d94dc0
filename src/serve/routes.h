/*
 * routes.h — the one table of the HTTP API. Routing, the 404 and 405 answers (with
 * Allow), the fields each endpoint accepts, its metrics label, its handler and the usage
 * text are all generated from it: adding an endpoint is a row here and a handler.
 *
 * TOKD_ENDPOINTS(X): X(ID, label, path, alias or NULL, method, handler, fields, lenient)
 *   label   the metrics label (the path, which dashboards already know)
 *   method  GET (answered on the I/O thread: cheap) or POST (a job for the worker pool)
 *   fields  the request fields it takes (a mask of TOKD_FIELDS)
 *   lenient unknown fields are ignored (vLLM's endpoints, whose clients send extra ones)
 *           rather than refused (tokd's own: a typo should not be silently ignored)
 */
#ifndef TOKD_ROUTES_H
#define TOKD_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TOKD_FIELDS(X): X(ID, "name") — every request field, JSON key and query parameter */
#define TOKD_FIELDS(X)                                                                        \
  X(TEXT, "text")                                                                             \
  X(PROMPT, "prompt")                                                                         \
  X(TOKENS, "tokens")                                                                         \
  X(ENCODING, "encoding")                                                                     \
  X(MODEL, "model")                                                                           \
  X(ALLOWED_SPECIAL, "allowed_special")                                                       \
  X(DISALLOWED_SPECIAL, "disallowed_special")                                                 \
  X(ADD_SPECIAL_TOKENS, "add_special_tokens")                                                 \
  X(SKIP_SPECIAL_TOKENS, "skip_special_tokens")                                               \
  X(OFFSETS, "offsets")                                                                       \
  X(TOKEN_STRINGS, "token_strings")                                                           \
  X(RETURN_TOKEN_STRS, "return_token_strs")                                                   \
  X(MAX_TOKENS, "max_tokens")                                                                 \
  X(TRUNCATION_SIDE, "truncation_side")                                                       \
  X(LIMIT, "limit")                                                                           \
  X(BYTES, "bytes")                                                                           \
  X(STREAM, "stream")                                                                         \
  X(TAIL, "tail")                                                                             \
  X(MESSAGES, "messages")                                                                     \
  X(TOOLS, "tools")                                                                           \
  X(DOCUMENTS, "documents")                                                                   \
  X(CHAT_TEMPLATE, "chat_template")                                                           \
  X(CHAT_TEMPLATE_KWARGS, "chat_template_kwargs")                                             \
  X(ADD_GENERATION_PROMPT, "add_generation_prompt")                                           \
  X(CONTINUE_FINAL_MESSAGE, "continue_final_message")                                         \
  /* the render API's request fields, kept raw by the parser and read by render.c */          \
  X(MAX_COMPLETION_TOKENS, "max_completion_tokens")                                           \
  X(TRUNCATE_PROMPT_TOKENS, "truncate_prompt_tokens")                                         \
  X(N, "n")                                                                                   \
  X(TEMPERATURE, "temperature")                                                               \
  X(TOP_P, "top_p")                                                                           \
  X(TOP_K, "top_k")                                                                           \
  X(MIN_P, "min_p")                                                                           \
  X(PRESENCE_PENALTY, "presence_penalty")                                                     \
  X(FREQUENCY_PENALTY, "frequency_penalty")                                                   \
  X(REPETITION_PENALTY, "repetition_penalty")                                                 \
  X(SEED, "seed")                                                                             \
  X(STOP, "stop")                                                                             \
  X(STOP_TOKEN_IDS, "stop_token_ids")                                                         \
  X(IGNORE_EOS, "ignore_eos")                                                                 \
  X(MIN_TOKENS, "min_tokens")                                                                 \
  X(INCLUDE_STOP_STR_IN_OUTPUT, "include_stop_str_in_output")                                 \
  X(SPACES_BETWEEN_SPECIAL_TOKENS, "spaces_between_special_tokens")                           \
  X(STREAM_OPTIONS, "stream_options")                                                         \
  X(CACHE_SALT, "cache_salt")                                                                 \
  X(PRIORITY, "priority")                                                                     \
  X(KV_TRANSFER_PARAMS, "kv_transfer_params")                                                 \
  X(USE_BEAM_SEARCH, "use_beam_search")                                                       \
  X(BAD_WORDS, "bad_words")                                                                   \
  X(ALLOWED_TOKEN_IDS, "allowed_token_ids")                                                   \
  /* Anthropic Messages and OpenAI Responses (providers.c) */                                  \
  X(SYSTEM, "system")                                                                         \
  X(STOP_SEQUENCES, "stop_sequences")                                                         \
  X(INPUT, "input")                                                                           \
  X(INSTRUCTIONS, "instructions")                                                             \
  X(REASONING_EFFORT, "reasoning_effort")

typedef enum {
#define X(id, name) TOKD_F_##id,
  TOKD_FIELDS(X)
#undef X
  TOKD_F__COUNT
} tokd_field;

#define F(id) (1ull << TOKD_F_##id)
#define FIELDS_SELECT (F(ENCODING) | F(MODEL))
#define FIELDS_SPECIAL (F(ALLOWED_SPECIAL) | F(DISALLOWED_SPECIAL) | F(ADD_SPECIAL_TOKENS))
/* a chat conversation, rendered with the model's chat template (vLLM's fields) */
#define FIELDS_CHAT                                                                           \
  (F(MESSAGES) | F(TOOLS) | F(DOCUMENTS) | F(CHAT_TEMPLATE) | F(CHAT_TEMPLATE_KWARGS) |         \
   F(ADD_GENERATION_PROMPT) | F(CONTINUE_FINAL_MESSAGE))
#define FIELDS_ENCODE                                                                         \
  (F(TEXT) | FIELDS_SELECT | FIELDS_SPECIAL | F(OFFSETS) | F(TOKEN_STRINGS) | F(MAX_TOKENS) |  \
   F(TRUNCATION_SIDE) | FIELDS_CHAT)
#define FIELDS_COUNT (F(TEXT) | FIELDS_SELECT | FIELDS_SPECIAL | F(LIMIT) | FIELDS_CHAT)
#define FIELDS_CHAT_ONLY (FIELDS_CHAT | FIELDS_SELECT | F(ADD_SPECIAL_TOKENS))
#define FIELDS_DECODE                                                                         \
  (F(TOKENS) | FIELDS_SELECT | F(SKIP_SPECIAL_TOKENS) | F(BYTES) | F(STREAM) | F(TAIL))
#define FIELDS_TOKENIZE (F(PROMPT) | F(MODEL) | F(ADD_SPECIAL_TOKENS) | F(RETURN_TOKEN_STRS) | FIELDS_CHAT)
#define FIELDS_DETOKENIZE (F(TOKENS) | F(MODEL) | F(SKIP_SPECIAL_TOKENS))
/* vLLM's render API (ChatCompletionRequest, CompletionRequest): the sampling fields that go
 * into the GenerateRequest's sampling_params, kept raw (see tokd_request.raw) */
#define FIELDS_SAMPLING                                                                       \
  (F(MAX_TOKENS) | F(MAX_COMPLETION_TOKENS) | F(TRUNCATE_PROMPT_TOKENS) | F(N) |              \
   F(TEMPERATURE) | F(TOP_P) | F(TOP_K) | F(MIN_P) | F(PRESENCE_PENALTY) |                    \
   F(FREQUENCY_PENALTY) | F(REPETITION_PENALTY) | F(SEED) | F(STOP) | F(STOP_TOKEN_IDS) |     \
   F(IGNORE_EOS) | F(MIN_TOKENS) | F(SKIP_SPECIAL_TOKENS) | F(INCLUDE_STOP_STR_IN_OUTPUT) |   \
   F(SPACES_BETWEEN_SPECIAL_TOKENS) | F(STREAM) | F(STREAM_OPTIONS) | F(CACHE_SALT) |         \
   F(PRIORITY) | F(KV_TRANSFER_PARAMS) | F(USE_BEAM_SEARCH) | F(BAD_WORDS) |                 \
   F(ALLOWED_TOKEN_IDS) | F(TRUNCATION_SIDE))
#define FIELDS_RENDER_CHAT                                                                    \
  (FIELDS_CHAT | F(MODEL) | F(ADD_SPECIAL_TOKENS) | FIELDS_SAMPLING | F(REASONING_EFFORT))
#define FIELDS_RENDER_COMPLETION (F(PROMPT) | F(MODEL) | F(ADD_SPECIAL_TOKENS) | FIELDS_SAMPLING)
/* an Anthropic Messages request (messages, system, tools with input_schema, ...) */
#define FIELDS_ANTHROPIC                                                                      \
  (F(MODEL) | F(MESSAGES) | F(SYSTEM) | F(TOOLS) | F(CHAT_TEMPLATE_KWARGS) | F(MAX_TOKENS) |    \
   F(STOP_SEQUENCES) | F(TEMPERATURE) | F(TOP_P) | F(TOP_K) | F(STREAM) | F(KV_TRANSFER_PARAMS))
#define FIELDS_RESPONSES (F(MODEL) | F(INPUT) | F(INSTRUCTIONS) | F(TOOLS))
/* the fields the render and provider endpoints keep raw (tokd_request.raw) */
#define FIELDS_RAW                                                                            \
  (FIELDS_SAMPLING | F(PROMPT) | F(SYSTEM) | F(STOP_SEQUENCES) | F(INPUT) | F(INSTRUCTIONS) |      \
   F(REASONING_EFFORT))

typedef enum { TOKD_GET, TOKD_POST } tokd_method;

#define TOKD_ENDPOINTS(X)                                                                     \
  X(ENCODE, "/encode", "/encode", "/v1/encode", TOKD_POST, tokd_handle_encode, FIELDS_ENCODE,   \
    false)                                                                                    \
  X(COUNT, "/count", "/count", "/v1/count", TOKD_POST, tokd_handle_encode, FIELDS_COUNT, false) \
  X(DECODE, "/decode", "/decode", "/v1/decode", TOKD_POST, tokd_handle_decode, FIELDS_DECODE,   \
    false)                                                                                    \
  X(TOKENIZE, "/tokenize", "/tokenize", NULL, TOKD_POST, tokd_handle_encode, FIELDS_TOKENIZE,   \
    true)                                                                                     \
  X(DETOKENIZE, "/detokenize", "/detokenize", NULL, TOKD_POST, tokd_handle_decode,              \
    FIELDS_DETOKENIZE, true)                                                                  \
  X(CHAT_TOKENIZE, "/chat_tokenize", "/chat_tokenize", NULL, TOKD_POST, tokd_handle_chat,       \
    FIELDS_CHAT_ONLY, true)                                                                   \
  X(APPLY_TEMPLATE, "/apply-template", "/apply-template", NULL, TOKD_POST, tokd_handle_chat,    \
    FIELDS_CHAT_ONLY, true)                                                                   \
  X(ENCODINGS, "/encodings", "/encodings", NULL, TOKD_GET, tokd_handle_encodings, 0, false)     \
  X(UI, "/", "/", "/ui", TOKD_GET, tokd_handle_ui, 0, false)                                    \
  X(UI_JS, "/ui/app.js", "/ui/app.js", NULL, TOKD_GET, tokd_handle_ui_js, 0, false)             \
  X(UI_CSS, "/ui/app.css", "/ui/app.css", NULL, TOKD_GET, tokd_handle_ui_css, 0, false)         \
  X(HEALTH, "/health", "/health", "/healthz", TOKD_GET, tokd_handle_health, 0, false)           \
  X(READY, "/ready", "/ready", "/readyz", TOKD_GET, tokd_handle_ready, 0, false)                \
  X(METRICS, "/metrics", "/metrics", NULL, TOKD_GET, tokd_handle_metrics, 0, false)           \
  X(RENDER_CHAT, "/v1/chat/completions/render", "/v1/chat/completions/render", NULL, TOKD_POST, \
    tokd_handle_render, FIELDS_RENDER_CHAT, true)                                             \
  X(RENDER_COMPLETION, "/v1/completions/render", "/v1/completions/render", NULL, TOKD_POST,     \
    tokd_handle_render, FIELDS_RENDER_COMPLETION, true)                                       \
  X(MODELS, "/v1/models", "/v1/models", NULL, TOKD_GET, tokd_handle_models, 0, false)           \
  X(MESSAGES_RENDER, "/v1/messages/render", "/v1/messages/render", NULL, TOKD_POST,             \
    tokd_handle_provider, FIELDS_ANTHROPIC, true)                                              \
  X(MESSAGES_COUNT, "/v1/messages/count_tokens", "/v1/messages/count_tokens", NULL, TOKD_POST,  \
    tokd_handle_provider, FIELDS_ANTHROPIC, true)                                              \
  X(RESPONSES_COUNT, "/v1/responses/input_tokens", "/v1/responses/input_tokens", NULL,          \
    TOKD_POST, tokd_handle_provider, FIELDS_RESPONSES, true)

typedef enum {
#define X(id, label, path, alias, method, handler, fields, lenient) EP_##id,
  TOKD_ENDPOINTS(X)
#undef X
  EP_OTHER, /* no such route: its own metrics label */
  EP__COUNT
} tokd_endpoint;

typedef struct tokd_route {
  const char *label, *path, *alias;
  tokd_method method;
  uint64_t fields;
  bool lenient;
} tokd_route;

/* Indexed by tokd_endpoint; EP_OTHER has label "other" and no path. */
extern const tokd_route TOKD_ROUTES[EP__COUNT];
extern const char *const TOKD_FIELD_NAMES[TOKD_F__COUNT];

/* The endpoint of a request path, or EP_OTHER. */
tokd_endpoint tokd_route_find(const char *path);
/* The shape of an endpoint's error answers: tokd's own ({"error": {"message", "type",
 * "param", "code": "name"}}), vLLM's ErrorResponse (code the status, type its exception
 * class) for the render API, or Anthropic's ({"type": "error", "error": {"type",
 * "message"}}) for /v1/messages/... The vLLM and Anthropic endpoints also refuse a model
 * they do not serve (404) and keep their fields raw for render.c and providers.c. */
typedef enum { TOKD_ERRORS_TOKD, TOKD_ERRORS_VLLM, TOKD_ERRORS_ANTHROPIC } tokd_error_shape;
tokd_error_shape tokd_route_error_shape(tokd_endpoint ep);
/* "POST /encode, /count, ... or GET /encodings, ..." for the 404 message, written into
 * list (cut short to fit cap; 1 KiB holds every route); returns list. */
const char *tokd_route_list(char *list, size_t cap);

#endif

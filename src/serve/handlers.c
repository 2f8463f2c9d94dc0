/*
 * handlers.c — one function per endpoint of the route table (routes.h): a parsed request
 * in, a JSON answer (or an error) out. No HTTP here: the request path (http.c) owns
 * connections, bodies and limits; the core (tok.h) does the tokenizing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_chat.h"
#include "serve/json.h"
#include "serve/pool.h"
#include "serve/cost.h"
#include "serve/server.h"
#include "common/util.h"
#include "serve/watchdog.h"

const tokd_handler TOKD_HANDLERS[EP__COUNT] = {
#define X(id, label, path, alias, method, handler, fields, lenient) handler,
    TOKD_ENDPOINTS(X)
#undef X
    NULL,
};

tokd_worker *tokd_worker_new(const tokd_server *srv)
{
  tokd_worker *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  if (!(w->scratch = tok_scratch_new(&srv->limits))) {
    free(w);
    return NULL;
  }
  return w;
}

void tokd_worker_free(tokd_worker *w)
{
  if (!w) return;
  tok_scratch_free(w->scratch);
  for (unsigned i = 0; i < w->n_helpers; i++) tok_scratch_free(w->helpers[i]);
  tok_buf_free(&w->bytes);
  tok_buf_free(&w->text);
  tok_buf_free(&w->chat);
  free(w);
}

void tokd_worker_trim(tokd_worker *w, size_t keep_bytes)
{
  if (w->bytes.cap > keep_bytes) tok_buf_free(&w->bytes);
  if (w->text.cap > keep_bytes) tok_buf_free(&w->text);
  if (w->chat.cap > keep_bytes) tok_buf_free(&w->chat);
  tok_scratch_trim(w->scratch, keep_bytes);
  for (unsigned i = 0; i < w->n_helpers; i++) tok_scratch_trim(w->helpers[i], keep_bytes);
}

/* ---------------------------------------------------------------------------------------
 * One long text on several threads (tok_split). The whole server lends at most
 * --split-threads - 1 helper threads at a time (tokd_split_gate), so that big requests
 * cannot multiply the threads; a request that finds none spare, or whose helpers' copy of the ids
 * does not fit in the memory budget, encodes on its worker alone, with the same result.
 */
typedef struct split_lease {
  tok_split split;
  size_t memory; /* taken from the budget */
} split_lease;

/* Bytes the helpers may hold beyond what the request reserved: their ids (and offsets)
 * before they are copied, at most one token per byte of their parts. */
#define SPLIT_BYTES_PER_BYTE(offsets) ((offsets) ? 12u : 4u)

static void split_begin(const tokd_server *srv, tokd_worker *w, const tok_encoding *enc,
                        size_t longest, bool offsets, split_lease *lease)
{
  *lease = (split_lease){0};
  unsigned cap = srv->cfg.split_threads;
  if (cap < 2 || longest < 2 * TOK_SPLIT_MIN_PART || !tok_encoding_splits(enc)) return;
  tokd_split_gate *gate = srv->split;
  unsigned want = (unsigned)(longest / TOK_SPLIT_MIN_PART) - 1, busy = atomic_load(&gate->busy);
  if (want > cap - 1) want = cap - 1;
  if (want > 64) want = 64;
  do {
    if (busy >= cap - 1) return;
    if (want > cap - 1 - busy) want = cap - 1 - busy;
  } while (!atomic_compare_exchange_weak(&gate->busy, &busy, busy + want));
  size_t memory = longest * SPLIT_BYTES_PER_BYTE(offsets);
  if (!tokd_budget_take(srv->budget, memory)) {
    atomic_fetch_sub(&gate->busy, want);
    return;
  }
  while (w->n_helpers < want && (w->helpers[w->n_helpers] = tok_scratch_new(&srv->limits)))
    w->n_helpers++;
  lease->split = (tok_split){.helpers = w->helpers, .n_helpers = want < w->n_helpers ? want : w->n_helpers};
  lease->memory = memory;
  atomic_fetch_sub(&gate->busy, want - lease->split.n_helpers);
  if (lease->split.n_helpers) {
    atomic_fetch_add_explicit(&gate->texts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&gate->helpers, lease->split.n_helpers, memory_order_relaxed);
  }
}

static void split_end(const tokd_server *srv, split_lease *lease)
{
  /* the helpers' copies are spent: their memory goes back with the lease */
  for (unsigned i = 0; i < lease->split.n_helpers; i++)
    tok_scratch_trim(lease->split.helpers[i], (size_t)64 << 10);
  if (lease->memory) tokd_budget_give(srv->budget, lease->memory);
  atomic_fetch_sub(&srv->split->busy, lease->split.n_helpers);
  *lease = (split_lease){0};
}

/* HTTP status of each core error, from the table in tok.h */
static const unsigned CORE_STATUS[] = {
#define X(e, name, msg, status) status,
    TOK_ERROR_TABLE(X)
#undef X
};

/* Maps a core error to a response. `what` names the input ("text", "text[3]"). */
void tokd_core_error(tokd_http_error *e, const tok_error *te, const char *what)
{
  unsigned status = (unsigned)te->code < TOK_ERR__COUNT ? CORE_STATUS[te->code] : 500;
  if (te->code == TOK_ENOMEM)
    tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
  else
    tokd_error_set(e, status, tok_err_name(te->code), what, "%s: %s", what, te->detail);
}

/* The output buffer passed its cap: the request asked for more than its share. */
bool tokd_too_large(tokd_http_error *e)
{
  tokd_error_set(e, 413, "response_too_large", NULL,
                 "the response would exceed this request's share of the server's memory "
                 "(--max-memory); ask for less at a time");
  return false;
}

/* Which tokenizer: "encoding" names one, "model" an OpenAI model (its encoding) or a
 * loaded tokenizer; both must agree; neither means the default. vLLM's tokenize endpoints
 * fall back to the default for a model they do not know (it is the LLM's name); its render
 * API answers 404 as vLLM does. */
bool tokd_resolve_encoding(const tokd_server *srv, const tokd_request *req, const tok_encoding **out,
                             tokd_http_error *e)
{
  bool strict = tokd_route_error_shape(req->ep) != TOKD_ERRORS_TOKD; /* vLLM's check_model */
  bool vllm = TOKD_ROUTES[req->ep].lenient && !strict;
  const tok_encoding *by_name = NULL, *by_model = NULL;
  if (req->encoding) {
    by_name = tok_registry_find(srv->reg, req->encoding, strlen(req->encoding));
    if (!by_name) {
      tokd_error_set(e, 404, "unknown_encoding", "encoding",
                     "encoding \"%.64s\" is not loaded; GET /encodings lists those that are",
                     req->encoding);
      return false;
    }
  }
  if (req->model) {
    const char *name = tokd_model_to_name(req->model);
    by_model = tok_registry_find(srv->reg, name, strlen(name));
    if (!by_model && strict) {
      tokd_error_set(e, 404, "unknown_model", "model", "The model `%.64s` does not exist.", req->model);
      return false;
    }
    if (!by_model && !vllm) {
      tokd_error_set(e, 404, "unknown_model", "model",
                     "no loaded tokenizer for model \"%.64s\"; name an \"encoding\" instead",
                     req->model);
      return false;
    }
  }
  if (by_name && by_model && by_name != by_model) {
    tokd_error_set(e, 400, "conflicting_fields", "model",
                   "model \"%.64s\" uses %s, but \"encoding\" says %s", req->model,
                   tok_encoding_get_info(by_model)->name, tok_encoding_get_info(by_name)->name);
    return false;
  }
  *out = by_name ? by_name : by_model ? by_model : srv->default_enc;
  return true;
}

static bool special_set(const tokd_request *req, const tok_encoding *enc, bool all,
                        tok_special_set *set, const tok_special_set **out, tokd_http_error *e)
{
  *out = NULL; /* the encoding's default */
  if (all || req->allowed_kind == SPECIAL_ALL) {
    tok_special_set_all(enc, set);
    *out = set;
  } else if (req->allowed_kind == SPECIAL_NONE) {
    tok_special_set_none(enc, set);
    *out = set;
  } else if (req->allowed_kind == SPECIAL_LIST) {
    tok_special_set_none(enc, set);
    for (size_t i = 0; i < req->n_allowed; i++) {
      tok_error te;
      if (tok_special_set_add(enc, set, req->allowed[i].s, req->allowed[i].len, &te) != TOK_OK) {
        tokd_error_set(e, 400, "unknown_special_token", "allowed_special", "%s", te.detail);
        return false;
      }
    }
    *out = set;
  }
  return true;
}

/* ---------------------------------------------------------------------------------------
 * Chat templates
 */
int tokd_chat_load(tokd_server *srv)
{
  size_t n = tok_registry_count(srv->reg);
  if (!(srv->chat = calloc(n ? n : 1, sizeof *srv->chat)) ||
      !(srv->chat_error = calloc(n ? n : 1, sizeof *srv->chat_error)))
    return -1;
  for (size_t i = 0; i < n; i++) {
    const tok_encoding_info *info = tok_encoding_get_info(tok_registry_at(srv->reg, i));
    char msg[400];
    if (!info->chat_template) {
      snprintf(msg, sizeof msg, "%s has no chat template (a Hugging Face model directory with one in "
               "tokenizer_config.json or chat_template.jinja has)%s", info->name,
               srv->cfg.allow_request_chat_template ? "; send \"chat_template\"" : "");
    } else {
      tok_error err;
      if (tok_chat_template_parse(info->chat_template, strlen(info->chat_template), &srv->chat[i], &err) == TOK_OK)
        continue;
      snprintf(msg, sizeof msg, "the chat template of %s is not supported: %s", info->name, err.detail);
      fprintf(stderr, "tokd: warning: %s\n", msg);
    }
    if (!(srv->chat_error[i] = strdup(msg))) return -1;
  }
  return 0;
}

void tokd_chat_free(tokd_server *srv)
{
  size_t n = srv->reg ? tok_registry_count(srv->reg) : 0;
  for (size_t i = 0; i < n; i++) { /* either array may be missing after a failed load */
    if (srv->chat) tok_chat_template_free(srv->chat[i]);
    if (srv->chat_error) free(srv->chat_error[i]);
  }
  free(srv->chat);
  free(srv->chat_error);
  srv->chat = NULL;
  srv->chat_error = NULL;
}

/* Renders the request's conversation into w->chat with the encoding's template (or the
 * request's own "chat_template"). Memory: the render may use half of what the request's
 * reservation leaves for its answer, the text a quarter (the encode needs the rest). */
bool tokd_render_chat(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                        const tok_encoding *enc, size_t share, tokd_http_error *e)
{
  const tok_chat_template *tmpl = NULL;
  tok_chat_template *own = NULL;
  tok_error te;
  if (req->chat_template) {
    if (!srv->cfg.allow_request_chat_template) { /* vLLM's answer without --trust-request-chat-template */
      tokd_error_set(e, 400, "untrusted_chat_template", "chat_template",
                     "chat template is passed with the request, but --allow-request-chat-template is not "
                     "set; refused request with untrusted chat template");
      return false;
    }
    if (tok_chat_template_parse(req->chat_template, strlen(req->chat_template), &own, &te) != TOK_OK) {
      tokd_error_set(e, te.code == TOK_ENOMEM ? 503 : 400, tok_err_name(te.code), "chat_template", "%s", te.detail);
      return false;
    }
    tmpl = own;
  } else {
    for (size_t i = 0; i < tok_registry_count(srv->reg); i++)
      if (tok_registry_at(srv->reg, i) == enc) {
        tmpl = srv->chat[i];
        if (!tmpl) {
          tokd_error_set(e, 400, "no_chat_template", "messages", "%s", srv->chat_error[i]);
          return false;
        }
      }
  }
  const tok_encoding_info *info = tok_encoding_get_info(enc);
  tok_chat_request cr = {
      .messages_json = req->messages.s, .messages_len = req->messages.len,
      .tools_json = req->tools.s, .tools_len = req->tools.len,
      .documents_json = req->documents.s, .documents_len = req->documents.len,
      .kwargs_json = req->chat_template_kwargs.s, .kwargs_len = req->chat_template_kwargs.len,
      .add_generation_prompt = req->add_generation_prompt,
      .continue_final_message = req->continue_final_message,
      .bos_token = info->bos_token, .eos_token = info->eos_token,
      .now = time(NULL),
  };
  tok_chat_limits lim = {.max_memory = share / 2 + 1, .max_output = share / 4 + 1,
                         .max_ms = srv->cfg.max_render_ms};
  w->chat.len = 0;
  w->chat.limit = share / 4 + 1;
  tok_err rc = tok_chat_render(tmpl, &cr, &lim, &w->chat, &te);
  tok_chat_template_free(own);
  if (rc == TOK_OK) return true;
  if (rc == TOK_ENOMEM) tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
  else if (rc == TOK_ELIMIT)
    tokd_error_set(e, 413, "limit_exceeded", "messages", "%s (the request's share of --max-memory, the template's step limit or --max-render-ms)", te.detail);
  else
    tokd_error_set(e, 400, tok_err_name(rc), rc == TOK_EINVAL ? "messages" : "chat_template", "%s", te.detail);
  return false;
}

#define TRY(expr)                                                                             \
  do {                                                                                        \
    if ((expr) != TOK_OK) return tokd_too_large(e);                                                \
  } while (0)

/* POST /encode, /count, /tokenize */
bool tokd_handle_encode(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                        tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  const tok_encoding *enc;
  tok_special_set set;
  tokd_endpoint ep = req->ep;
  tok_encode_opts opts = {.check_disallowed = req->check_disallowed,
                          .want_offsets = req->offsets,
                          .add_special_tokens = req->add_special_tokens,
                          .prefix_cache = srv->prefix_cache};
  if (!tokd_resolve_encoding(srv, req, &enc, e)) return false;
  if (!special_set(req, enc, ep == EP_TOKENIZE, &set, &opts.allowed_special, e)) return false;
  /* a limit stops counting early; stop_after 0 means "no limit", so limit 0 counts all */
  if (ep == EP_COUNT && req->limit > 0) opts.stop_after = (size_t)req->limit;
  const char *name = tok_encoding_get_info(enc)->name;
  const char *field = ep == EP_TOKENIZE ? "prompt" : "text";
  unsigned long long total = 0;
  tokd_text rendered;
  tokd_request chat_req;
  if (req->messages.s) {
    /* the conversation, rendered, is the one text; its special tokens are written by the
     * template, so all of them are recognised */
    if (!tokd_render_chat(srv, w, req, enc, out->limit, e)) return false;
    rendered = (tokd_text){w->chat.data ? w->chat.data : "", w->chat.len};
    chat_req = *req;
    chat_req.texts = &rendered;
    chat_req.n_texts = 1;
    chat_req.batch = false;
    req = &chat_req;
    field = "messages";
    if (!special_set(req, enc, true, &set, &opts.allowed_special, e)) return false;
  }

  if (ep == EP_TOKENIZE) {
    TRY(tokd_json_lit(out, "{"));
  } else {
    TRY(tokd_json_lit(out, "{\"encoding\":"));
    TRY(tokd_json_string(out, name, strlen(name)));
    TRY(tokd_json_lit(out, req->batch ? ",\"results\":[" : ","));
  }
  for (size_t i = 0; i < req->n_texts; i++) {
    char what[48];
    if (req->batch) snprintf(what, sizeof what, "%s[%zu]", field, i);
    else snprintf(what, sizeof what, "%s", field);
    tok_error te;
    if (i) TRY(tokd_json_lit(out, ","));
    if (req->batch) TRY(tokd_json_lit(out, "{"));
    if (ep == EP_COUNT) {
      size_t n;
      bool stopped = false;
      split_lease lease;
      split_begin(srv, w, enc, req->texts[i].len, false, &lease);
      opts.split = &lease.split;
      tok_err rc = tok_count(enc, w->scratch, req->texts[i].s, req->texts[i].len, &opts, &n, &stopped, &te);
      split_end(srv, &lease);
      opts.split = NULL;
      if (rc != TOK_OK) {
        tokd_core_error(e, &te, what);
        return false;
      }
      total += n;
      TRY(tokd_json_lit(out, "\"count\":"));
      TRY(tokd_json_uint(out, n));
      if (req->limit >= 0) {
        TRY(tokd_json_lit(out, ",\"limit\":"));
        TRY(tokd_json_uint(out, (unsigned long long)req->limit));
        bool fits = !stopped && n <= (size_t)req->limit;
        TRY(tokd_json_lit(out, fits ? ",\"fits\":true" : ",\"fits\":false"));
        TRY(tokd_json_lit(out, stopped ? ",\"exact\":false" : ",\"exact\":true"));
      }
    } else {
      tok_encode_result r;
      split_lease lease;
      split_begin(srv, w, enc, req->texts[i].len, req->offsets, &lease);
      opts.split = &lease.split;
      tok_err rc = tok_encode(enc, w->scratch, req->texts[i].s, req->texts[i].len, &opts, &r, &te);
      split_end(srv, &lease);
      opts.split = NULL;
      if (rc != TOK_OK) {
        tokd_core_error(e, &te, what);
        return false;
      }
      const uint32_t *ids = r.ids, *offs = r.offsets;
      size_t n = r.len;
      bool truncated = false;
      if (req->max_tokens >= 0 && n > (size_t)req->max_tokens) {
        truncated = true;
        if (req->truncate_left) {
          ids += n - (size_t)req->max_tokens;
          if (offs) offs += 2 * (n - (size_t)req->max_tokens);
        }
        n = (size_t)req->max_tokens;
      }
      total += n;
      TRY(tokd_json_lit(out, "\"count\":"));
      TRY(tokd_json_uint(out, n));
      if (ep == EP_TOKENIZE) {
        TRY(tokd_json_lit(out, ",\"max_model_len\":"));
        TRY(tokd_json_uint(out, tokd_max_model_len(srv, enc)));
      }
      if (req->max_tokens >= 0) {
        TRY(tokd_json_lit(out, truncated ? ",\"truncated\":true" : ",\"truncated\":false"));
        TRY(tokd_json_lit(out, ",\"total_count\":"));
        TRY(tokd_json_uint(out, r.len));
      }
      TRY(tokd_json_lit(out, ",\"tokens\":"));
      TRY(tokd_json_ids(out, ids, n));
      if (req->token_strings) {
        /* the tokens as Hugging Face spells them (byte-level: "\u0120world") */
        TRY(tokd_json_lit(out, ep == EP_TOKENIZE ? ",\"token_strs\":[" : ",\"token_strings\":["));
        for (size_t k = 0; k < n; k++) {
          w->text.len = 0;
          w->text.limit = out->limit;
          TRY(tok_token_string(enc, ids[k], &w->text));
          if (k) TRY(tokd_json_lit(out, ","));
          TRY(tokd_json_string(out, w->text.data, w->text.len));
        }
        TRY(tokd_json_lit(out, "]"));
      }
      if (offs) {
        /* [start, end) byte offsets of each token in the UTF-8 text */
        TRY(tokd_json_lit(out, ",\"offset_unit\":\"utf8_byte\",\"offsets\":["));
        for (size_t k = 0; k < n; k++) {
          if (k) TRY(tokd_json_lit(out, ","));
          TRY(tokd_json_ids(out, offs + 2 * k, 2));
        }
        TRY(tokd_json_lit(out, "]"));
      }
    }
    if (req->batch) TRY(tokd_json_lit(out, "}"));
  }
  if (req->batch) {
    TRY(tokd_json_lit(out, "],\"total\":"));
    TRY(tokd_json_uint(out, total));
  }
  TRY(tokd_json_lit(out, "}\n"));
  *tokens = total;
  return true;
}

/* POST /decode, /detokenize */
bool tokd_handle_decode(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                        tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  const tok_encoding *enc;
  tokd_endpoint ep = req->ep;
  if (!tokd_resolve_encoding(srv, req, &enc, e)) return false;
  bool stream = req->stream || req->tail;
  if (stream && req->batch) {
    tokd_error_set(e, 400, "invalid_request", "tail", "streaming decode takes one list of ids, not a batch");
    return false;
  }
  const char *name = tok_encoding_get_info(enc)->name;
  if (ep == EP_DECODE) {
    TRY(tokd_json_lit(out, "{\"encoding\":"));
    TRY(tokd_json_string(out, name, strlen(name)));
    TRY(tokd_json_lit(out, req->batch ? ",\"results\":[" : ","));
  } else {
    TRY(tokd_json_lit(out, "{"));
  }
  for (size_t li = 0; li < req->n_lists; li++) {
    /* no ids at all leaves req->ids NULL (NULL + 0 is undefined: clang's UBSan in fuzz_http) */
    const uint32_t *ids = req->ids ? req->ids + req->list_start[li] : NULL;
    size_t n = req->list_start[li + 1] - req->list_start[li];
    w->bytes.len = w->text.len = 0;
    /* the decoded text is escaped into out, at most 6 bytes per byte: share out's cap */
    w->bytes.limit = w->text.limit = out->limit / 2 + 1;
    if (req->tail) {
      size_t tl = strlen(req->tail);
      if (tok_base64_decode(req->tail, tl, &w->bytes) != TOK_OK || w->bytes.len > 3) {
        tokd_error_set(e, 400, "invalid_tail", "tail",
                       "\"tail\" must be the base64 string a previous streaming call returned");
        return false;
      }
    }
    tok_error te;
    tok_decode_opts dopts = {.skip_special_tokens = req->skip_special_tokens,
                             .continuation = req->tail != NULL};
    /* the exact bytes when they are asked for or streamed; else the decoder's text */
    bool need_bytes = req->bytes_out || stream;
    tok_err rc = need_bytes ? tok_decode_bytes(enc, w->scratch, ids, n, &dopts, &w->bytes, &te)
                            : tok_decode_text(enc, w->scratch, ids, n, &dopts, &w->text, &te);
    if (rc != TOK_OK) {
      char param[48];
      if (req->batch) snprintf(param, sizeof param, "tokens[%zu][%zu]", li, te.index);
      else snprintf(param, sizeof param, "tokens[%zu]", te.index);
      if (te.code == TOK_EUNKNOWN_TOKEN)
        tokd_error_set(e, 400, "unknown_token", param, "%s: token id %u is not in %s", param,
                       ids[te.index], name);
      else if (te.code == TOK_ELIMIT)
        return tokd_too_large(e);
      else tokd_core_error(e, &te, param);
      return false;
    }
    *tokens += n;
    size_t complete = stream ? tok_utf8_complete_len(w->bytes.data, w->bytes.len) : w->bytes.len;
    if (need_bytes) {
      /* the text of exact bytes: Hugging Face decoders repair invalid UTF-8 their own way,
       * so for them a non-streamed text comes from the decoder */
      if (stream || tok_encoding_get_info(enc)->kind == TOK_KIND_TIKTOKEN)
        TRY(tok_utf8_append_lossy(&w->text, w->bytes.data, complete));
      else
        TRY(tok_decode_text(enc, w->scratch, ids, n, &dopts, &w->text, &te));
    }
    if (li) TRY(tokd_json_lit(out, ","));
    if (req->batch) TRY(tokd_json_lit(out, "{"));
    TRY(tokd_json_lit(out, ep == EP_DETOKENIZE ? "\"prompt\":" : "\"text\":"));
    TRY(tokd_json_string(out, w->text.data, w->text.len));
    if (req->bytes_out) {
      TRY(tokd_json_lit(out, ",\"bytes\":\""));
      TRY(tok_base64_encode(w->bytes.data, w->bytes.len, out));
      TRY(tokd_json_lit(out, "\""));
    }
    if (stream) {
      TRY(tokd_json_lit(out, ",\"tail\":\""));
      TRY(tok_base64_encode(w->bytes.data + complete, w->bytes.len - complete, out));
      TRY(tokd_json_lit(out, "\""));
    }
    if (req->batch) TRY(tokd_json_lit(out, "}"));
  }
  TRY(tokd_json_lit(out, req->batch ? "]}\n" : "}\n"));
  return true;
}

/* ---------------------------------------------------------------------------------------
 * GET endpoints (on the I/O thread)
 */
bool tokd_handle_encodings(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                           tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)w, (void)req, (void)tokens;
  if (tok_buf_append(out, srv->encodings_json.data, srv->encodings_json.len) != TOK_OK) return tokd_too_large(e);
  return true;
}

bool tokd_handle_health(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                        tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)srv, (void)w, (void)req, (void)tokens;
  /* liveness: the I/O threads answer, so the process makes progress */
  if (tokd_json_lit(out, "{\"status\":\"ok\"}\n") != TOK_OK) return tokd_too_large(e);
  return true;
}

bool tokd_server_ready(const tokd_server *srv)
{
  return atomic_load(&srv->ready) && !atomic_load(&srv->draining) &&
         atomic_load(&srv->inflight) < srv->cfg.max_inflight &&
         tokd_budget_available(srv->budget) >= (1u << 20);
}

bool tokd_handle_ready(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                       tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)w, (void)req, (void)tokens;
  if (tokd_server_ready(srv)) {
    if (tokd_json_lit(out, "{\"status\":\"ready\"}\n") != TOK_OK) return tokd_too_large(e);
    return true;
  }
  const char *why = !atomic_load(&srv->ready)      ? "loading"
                    : atomic_load(&srv->draining)  ? "draining"
                    : atomic_load(&srv->inflight) >= srv->cfg.max_inflight ? "busy: every in-flight slot is taken"
                                                   : "busy: the memory budget is spent";
  tokd_error_set(e, 503, atomic_load(&srv->draining) ? "draining" : "overloaded", NULL, "not ready: %s", why);
  return false;
}

bool tokd_handle_metrics(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                         tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)w, (void)req, (void)tokens;
  tokd_metrics_gauges g = {
      .ready = tokd_server_ready(srv),
      .encodings = (unsigned)tok_registry_count(srv->reg),
      .inflight = atomic_load(&srv->inflight),
      .queued = srv->pool ? tokd_pool_queued(srv->pool) : 0,
      .connections = tokd_watchdog_count(srv->watchdog),
      .budget_bytes = srv->budget->limit,
      .budget_used = atomic_load(&srv->budget->used),
      .budget_peak = atomic_load(&srv->budget->peak),
      .budget_rejected = atomic_load(&srv->budget->rejected),
      .warm = atomic_load(&srv->warm),
      .split_texts = atomic_load(&srv->split->texts),
      .split_helpers = atomic_load(&srv->split->helpers),
  };
  tokd_linger_get_stats(srv->linger, &g.linger);
  tokd_cost_figures cost;
  tokd_cost_read(srv->cost, &cost);
  g.cost = &cost;
  g.reg = srv->reg;
  tok_prefix_cache_stats pc;
  if (srv->prefix_cache) {
    tok_prefix_cache_read(srv->prefix_cache, &pc);
    g.prefix_cache = &pc;
  }
  if (tokd_metrics_render(srv->metrics, out, &g) != TOK_OK) return tokd_too_large(e);
  return true;
}

tok_err tokd_encodings_json(const tokd_server *srv, tok_buf *out)
{
  tok_err rc;
#define W(x) if ((rc = (x)) != TOK_OK) return rc
  const char *def = tok_encoding_get_info(srv->default_enc)->name;
  W(tokd_json_lit(out, "{\"default\":"));
  W(tokd_json_string(out, def, strlen(def)));
  W(tokd_json_lit(out, ",\"encodings\":["));
  for (size_t i = 0; i < tok_registry_count(srv->reg); i++) {
    const tok_encoding_info *info = tok_encoding_get_info(tok_registry_at(srv->reg, i));
    if (i) W(tokd_json_lit(out, ","));
    W(tokd_json_lit(out, "{\"name\":"));
    W(tokd_json_string(out, info->name, strlen(info->name)));
    W(tokd_json_lit(out, ",\"aliases\":["));
    for (size_t a = 0; info->aliases[a]; a++) {
      if (a) W(tokd_json_lit(out, ","));
      W(tokd_json_string(out, info->aliases[a], strlen(info->aliases[a])));
    }
    W(tokd_json_lit(out, "],\"n_vocab\":"));
    W(tokd_json_uint(out, info->n_vocab));
    W(tokd_json_lit(out, ",\"n_ranks\":"));
    W(tokd_json_uint(out, info->n_ranks));
    W(tokd_json_lit(out, ",\"special_tokens\":{"));
    for (size_t k = 0; k < info->n_special; k++) {
      if (k) W(tokd_json_lit(out, ","));
      W(tokd_json_string(out, info->special[k].text, info->special[k].text_len));
      W(tokd_json_lit(out, ":"));
      W(tokd_json_uint(out, info->special[k].id));
    }
    W(tokd_json_lit(out, "},\"n_added_tokens\":"));
    W(tokd_json_uint(out, info->n_added));
    bool tiktoken = info->kind == TOK_KIND_TIKTOKEN;
    W(tokd_json_lit(out, tiktoken ? ",\"kind\":\"tiktoken\"" : ",\"kind\":\"huggingface\""));
    W(tokd_json_lit(out, ",\"source\":"));
    W(tokd_json_string(out, info->source, strlen(info->source)));
    if (tiktoken) {
      W(tokd_json_lit(out, ",\"pattern\":"));
      W(tokd_json_string(out, info->pattern, strlen(info->pattern)));
      W(tokd_json_lit(out, ",\"sha256\":"));
      W(tokd_json_string(out, info->sha256, strlen(info->sha256)));
    }
    const char *names[] = {"normalizer", "pre_tokenizer", "model", "post_processor", "decoder"};
    const char *values[] = {info->normalizer, info->pre_tokenizer, info->model, info->post_processor, info->decoder};
    W(tokd_json_lit(out, ",\"components\":{"));
    for (int c = 0; c < 5; c++) {
      W(tokd_json_lit(out, c ? ",\"" : "\""));
      W(tokd_json_lit(out, names[c]));
      W(tokd_json_lit(out, "\":"));
      W(tokd_json_string(out, values[c], strlen(values[c])));
    }
    W(tokd_json_lit(out, "}"));
    if (info->bos_token) {
      W(tokd_json_lit(out, ",\"bos_token\":"));
      W(tokd_json_string(out, info->bos_token, strlen(info->bos_token)));
    }
    if (info->eos_token) {
      W(tokd_json_lit(out, ",\"eos_token\":"));
      W(tokd_json_string(out, info->eos_token, strlen(info->eos_token)));
    }
    W(tokd_json_lit(out, srv->chat && srv->chat[i] ? ",\"chat_template\":true" : ",\"chat_template\":false"));
    W(tokd_json_lit(out, info->embedded ? ",\"embedded\":true}" : ",\"embedded\":false}"));
  }
  W(tokd_json_lit(out, "]}\n"));
#undef W
  return TOK_OK;
}

/* POST /chat_tokenize (TGI: the templated text and its tokens with their text and byte
 * range) and /apply-template (llama.cpp: the templated text only) */
bool tokd_handle_chat(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                      tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  const tok_encoding *enc;
  if (!tokd_resolve_encoding(srv, req, &enc, e)) return false;
  if (!tokd_render_chat(srv, w, req, enc, out->limit, e)) return false;
  const char *text = w->chat.data ? w->chat.data : "";
  size_t text_len = w->chat.len;
  if (req->ep == EP_APPLY_TEMPLATE) {
    TRY(tokd_json_lit(out, "{\"prompt\":"));
    TRY(tokd_json_string(out, text, text_len));
    TRY(tokd_json_lit(out, "}\n"));
    return true;
  }
  tok_special_set set;
  tok_special_set_all(enc, &set);
  tok_encode_opts opts = {.allowed_special = &set, .want_offsets = true,
                          .add_special_tokens = req->add_special_tokens};
  tok_encode_result r;
  tok_error te;
  if (tok_encode(enc, w->scratch, text, text_len, &opts, &r, &te) != TOK_OK) {
    tokd_core_error(e, &te, "messages");
    return false;
  }
  TRY(tokd_json_lit(out, "{\"tokenize_response\":["));
  for (size_t k = 0; k < r.len; k++) {
    uint32_t start = r.offsets[2 * k], stop = r.offsets[2 * k + 1];
    if (k) TRY(tokd_json_lit(out, ","));
    TRY(tokd_json_lit(out, "{\"id\":"));
    TRY(tokd_json_uint(out, r.ids[k]));
    TRY(tokd_json_lit(out, ",\"text\":"));
    /* the token's bytes of the text; a token inside a character shows U+FFFD */
    w->text.len = 0;
    w->text.limit = out->limit;
    TRY(tok_utf8_append_lossy(&w->text, text + start, stop - start));
    TRY(tokd_json_string(out, w->text.data ? w->text.data : "", w->text.len));
    TRY(tokd_json_lit(out, ",\"start\":"));
    TRY(tokd_json_uint(out, start));
    TRY(tokd_json_lit(out, ",\"stop\":"));
    TRY(tokd_json_uint(out, stop));
    TRY(tokd_json_lit(out, "}"));
  }
  TRY(tokd_json_lit(out, "],\"templated_text\":"));
  TRY(tokd_json_string(out, text, text_len));
  TRY(tokd_json_lit(out, ",\"count\":"));
  TRY(tokd_json_uint(out, r.len));
  TRY(tokd_json_lit(out, "}\n"));
  *tokens = r.len;
  return true;
}

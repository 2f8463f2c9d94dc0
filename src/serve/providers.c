/*
 * providers.c — the provider-shaped requests that agent clients and gateways send, turned
 * into the chat request vLLM would render, so their counts are the engine's:
 *
 *   POST /v1/messages/count_tokens   Anthropic -> {"input_tokens": N, "context_management":
 *                                    {"original_input_tokens": N}} (vLLM's answer)
 *   POST /v1/messages/render         Anthropic -> one GenerateRequest (render.c)
 *   POST /v1/responses/input_tokens  OpenAI Responses -> {"object": "response.input_tokens",
 *                                    "input_tokens": N}
 *
 * Anthropic requests are converted as vLLM's AnthropicServingMessages does
 * (vllm/entrypoints/anthropic/serving.py, _convert_anthropic_to_openai_request): the system
 * string or text blocks (and system messages) joined into one system message, Claude
 * Code's x-anthropic-billing-header blocks dropped; per message, text blocks become
 * content (one text block: a string), thinking blocks the reasoning, tool_use blocks
 * tool_calls (arguments json.dumps(input)), a user's tool_result blocks tool messages
 * placed before it (their text items joined by "\n"); tools become functions whose
 * parameters are input_schema ("type": "object" added when missing). Images are refused:
 * tokd renders text only. The result then takes the one chat path (messages.c's
 * normalizer, the model's template).
 *
 * Responses input follows vLLM's construct_input_messages (entrypoints/openai/responses):
 * instructions a system message, a string input a user message, items as chat messages
 * (function_call an assistant tool call, function_call_output a tool message, reasoning an
 * assistant's reasoning, message items as they are), function tools flattened into chat
 * tools. vLLM renders gpt-oss's Responses with the harmony encoder, not its template; tokd
 * renders every model with its template (README says so).
 *
 * The conversion is built with cJSON and printed compactly; the chat path reads that text.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/json.h"
#include "serve/server.h"

typedef struct conv {
  tokd_http_error *e;
  bool failed;
} conv;

static cJSON *fail(conv *c, unsigned status, const char *param, const char *msg)
{
  if (!c->failed) tokd_error_set(c->e, status, "invalid_value", param, "%s", msg);
  c->failed = true;
  return NULL;
}

static const char *str_of(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool billing_header(const char *text)
{
  return !strncmp(text, "x-anthropic-billing-header", 26);
}

/* system text from a string or a list of blocks into *sys (appended) */
static void system_parts(conv *c, const cJSON *v, cJSON *parts)
{
  if (cJSON_IsString(v)) {
    cJSON_AddItemToArray(parts, cJSON_CreateString(v->valuestring));
    return;
  }
  if (!cJSON_IsArray(v)) {
    fail(c, 400, "system", "\"system\" must be a string or a list of text blocks");
    return;
  }
  const cJSON *b;
  cJSON_ArrayForEach(b, v) {
    const char *type = str_of(b, "type"), *text = str_of(b, "text");
    if (!type) {
      fail(c, 400, "system", "a system block needs a \"type\"");
      return;
    }
    if (!strcmp(type, "text") && text && text[0] && !billing_header(text))
      cJSON_AddItemToArray(parts, cJSON_CreateString(text));
  }
}

static char *joined(const cJSON *parts, const char *sep)
{
  size_t n = 1;
  const cJSON *p;
  cJSON_ArrayForEach(p, parts) n += strlen(p->valuestring) + strlen(sep);
  char *s = malloc(n);
  if (!s) return NULL;
  s[0] = 0;
  size_t at = 0;
  bool first = true;
  cJSON_ArrayForEach(p, parts) {
    if (!first) at += (size_t)sprintf(s + at, "%s", sep);
    first = false;
    at += (size_t)sprintf(s + at, "%s", p->valuestring);
  }
  return s;
}

/* a user's tool_result block: the tool message (serving.py _convert_user_tool_result) */
static void tool_result(conv *c, const cJSON *b, cJSON *out)
{
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(b, "content");
  cJSON *texts = cJSON_CreateArray();
  if (cJSON_IsString(content)) {
    cJSON_AddItemToArray(texts, cJSON_CreateString(content->valuestring));
  } else if (cJSON_IsArray(content)) {
    const cJSON *item;
    cJSON_ArrayForEach(item, content) {
      const char *type = cJSON_IsObject(item) ? str_of(item, "type") : NULL;
      if (type && !strcmp(type, "text")) {
        const char *t = str_of(item, "text");
        cJSON_AddItemToArray(texts, cJSON_CreateString(t ? t : ""));
      } else if (type && !strcmp(type, "image")) {
        fail(c, 400, "messages", "image content is not supported: tokd renders text only");
      }
    }
  }
  char *text = joined(texts, "\n");
  cJSON_Delete(texts);
  const char *id = str_of(b, "tool_use_id");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "tool");
  cJSON_AddStringToObject(m, "tool_call_id", id ? id : "");
  cJSON_AddStringToObject(m, "content", text ? text : "");
  free(text);
  cJSON_AddItemToArray(out, m);
}

static void anthropic_message(conv *c, const cJSON *msg, cJSON *out)
{
  const char *role = str_of(msg, "role");
  if (!role) {
    fail(c, 400, "messages", "a message needs a \"role\"");
    return;
  }
  /* AnthropicMessage.normalize_role: Claude Code's ctx and msg are user */
  if (!strcmp(role, "ctx") || !strcmp(role, "msg")) role = "user";
  if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system")) {
    fail(c, 400, "messages", "a message's role must be user, assistant or system");
    return;
  }
  if (!strcmp(role, "system")) return; /* joined into the system message */
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", role);
  if (cJSON_IsString(content)) {
    cJSON_AddStringToObject(m, "content", content->valuestring);
    cJSON_AddItemToArray(out, m);
    return;
  }
  if (!cJSON_IsArray(content)) {
    cJSON_Delete(m);
    fail(c, 400, "messages", "a message's content must be a string or a list of content blocks");
    return;
  }
  cJSON *parts = cJSON_CreateArray(), *calls = cJSON_CreateArray(), *reasoning = cJSON_CreateArray();
  const cJSON *b;
  cJSON_ArrayForEach(b, content) {
    const char *type = cJSON_IsObject(b) ? str_of(b, "type") : NULL;
    if (!type) {
      fail(c, 400, "messages", "a content block needs a \"type\"");
      break;
    }
    const char *text = str_of(b, "text");
    if (!strcmp(type, "text")) {
      if (text && text[0]) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", "text");
        cJSON_AddStringToObject(p, "text", text);
        cJSON_AddItemToArray(parts, p);
      }
    } else if (!strcmp(type, "image")) {
      fail(c, 400, "messages", "image content is not supported: tokd renders text only");
    } else if (!strcmp(type, "thinking")) {
      const char *t = str_of(b, "thinking");
      if (t) cJSON_AddItemToArray(reasoning, cJSON_CreateString(t));
    } else if (!strcmp(type, "tool_use")) {
      const char *id = str_of(b, "id"), *name = str_of(b, "name");
      const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
      char *args = cJSON_IsObject(input) ? cJSON_PrintUnformatted(input) : NULL;
      char fallback_id[32];
      snprintf(fallback_id, sizeof fallback_id, "call_%lld", (long long)time(NULL));
      cJSON *call = cJSON_CreateObject(), *fn = cJSON_CreateObject();
      cJSON_AddStringToObject(call, "id", id && id[0] ? id : fallback_id);
      cJSON_AddStringToObject(call, "type", "function");
      cJSON_AddStringToObject(fn, "name", name ? name : "");
      cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
      cJSON_AddItemToObject(call, "function", fn);
      cJSON_AddItemToArray(calls, call);
      free(args);
    } else if (!strcmp(type, "tool_result")) {
      if (!strcmp(role, "user")) {
        tool_result(c, b, out);
      } else {
        const cJSON *rc = cJSON_GetObjectItemCaseSensitive(b, "content");
        if (rc && !cJSON_IsString(rc)) {
          fail(c, 400, "messages", "an assistant's tool_result must have string content here");
        } else {
          /* serving.py: "Tool result: " + str(content) as a text part */
          size_t n = rc ? strlen(rc->valuestring) : 0;
          char *t = malloc(n + 14);
          if (t) {
            snprintf(t, n + 14, "Tool result: %s", rc && rc->valuestring[0] ? rc->valuestring : "");
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "type", "text");
            cJSON_AddStringToObject(p, "text", t);
            cJSON_AddItemToArray(parts, p);
            free(t);
          }
        }
      }
    } else if (strcmp(type, "redacted_thinking") && strcmp(type, "tool_reference")) {
      fail(c, 400, "messages", "unknown content block type");
    }
  }
  if (cJSON_GetArraySize(reasoning)) {
    char *r = joined(reasoning, "");
    cJSON_AddStringToObject(m, "reasoning", r ? r : "");
    free(r);
  }
  if (cJSON_GetArraySize(calls)) cJSON_AddItemToObject(m, "tool_calls", calls);
  else cJSON_Delete(calls);
  bool has_content = cJSON_GetArraySize(parts) > 0;
  if (cJSON_GetArraySize(parts) == 1) {
    cJSON_AddStringToObject(m, "content", str_of(parts->child, "text"));
    cJSON_Delete(parts);
  } else if (has_content) {
    cJSON_AddItemToObject(m, "content", parts);
  } else {
    cJSON_Delete(parts);
  }
  cJSON_Delete(reasoning);
  /* a user message left without content is dropped (its tool results went before it) */
  if (!strcmp(role, "user") && !has_content) cJSON_Delete(m);
  else cJSON_AddItemToArray(out, m);
}

/* tools: {"type": "function", "function": {"name", "description", "parameters"}} */
static cJSON *chat_tools(conv *c, const cJSON *tools, bool responses)
{
  if (!tools || cJSON_IsNull(tools)) return NULL;
  if (!cJSON_IsArray(tools)) return fail(c, 400, "tools", "\"tools\" must be a list");
  cJSON *out = cJSON_CreateArray();
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    const char *type = str_of(t, "type");
    if (responses && (!type || strcmp(type, "function"))) {
      fail(c, 400, "tools", "only function tools can be rendered");
      break;
    }
    const char *name = str_of(t, "name"), *desc = str_of(t, "description");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, responses ? "parameters" : "input_schema");
    if (!name || (!responses && !cJSON_IsObject(schema))) {
      fail(c, 400, "tools", responses ? "a function tool needs a \"name\""
                                      : "a tool needs a \"name\" and an \"input_schema\" object");
      break;
    }
    cJSON *fn = cJSON_CreateObject(), *tool = cJSON_CreateObject();
    cJSON_AddStringToObject(fn, "name", name);
    if (desc) cJSON_AddStringToObject(fn, "description", desc);
    if (cJSON_IsObject(schema)) {
      cJSON *p = cJSON_Duplicate(schema, true);
      /* AnthropicTool.validate_input_schema */
      if (!responses && !cJSON_GetObjectItemCaseSensitive(p, "type")) cJSON_AddStringToObject(p, "type", "object");
      cJSON_AddItemToObject(fn, "parameters", p);
    }
    cJSON_AddStringToObject(tool, "type", "function");
    cJSON_AddItemToObject(tool, "function", fn);
    cJSON_AddItemToArray(out, tool);
  }
  return out;
}

static cJSON *parse_raw(const tokd_text *t)
{
  if (!t->s) return NULL;
  cJSON *v = cJSON_ParseWithLength(t->s, t->len);
  if (cJSON_IsNull(v)) {
    cJSON_Delete(v);
    return NULL;
  }
  return v;
}

static cJSON *anthropic_messages(conv *c, const tokd_request *req)
{
  cJSON *msgs = parse_raw(&req->messages), *sys = parse_raw(&req->raw[TOKD_F_SYSTEM]);
  cJSON *out = cJSON_CreateArray(), *parts = cJSON_CreateArray();
  if (!cJSON_IsArray(msgs)) fail(c, 400, "messages", "\"messages\" must be a list of messages");
  if (sys) system_parts(c, sys, parts);
  const cJSON *m;
  if (cJSON_IsArray(msgs))
    cJSON_ArrayForEach(m, msgs) {
      const char *role = str_of(m, "role");
      const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
      if (role && !strcmp(role, "system")) system_parts(c, content, parts);
    }
  if (cJSON_GetArraySize(parts)) {
    char *s = joined(parts, "");
    cJSON *sm = cJSON_CreateObject();
    cJSON_AddStringToObject(sm, "role", "system");
    cJSON_AddStringToObject(sm, "content", s ? s : "");
    free(s);
    cJSON_AddItemToArray(out, sm);
  }
  if (cJSON_IsArray(msgs))
    cJSON_ArrayForEach(m, msgs) {
      if (!cJSON_IsObject(m)) {
        fail(c, 400, "messages", "a message must be an object");
        break;
      }
      anthropic_message(c, m, out);
    }
  cJSON_Delete(parts);
  cJSON_Delete(msgs);
  cJSON_Delete(sys);
  return out;
}

/* Responses items as chat messages (construct_input_messages) */
static cJSON *responses_messages(conv *c, const tokd_request *req)
{
  cJSON *input = parse_raw(&req->raw[TOKD_F_INPUT]), *instr = parse_raw(&req->raw[TOKD_F_INSTRUCTIONS]);
  cJSON *out = cJSON_CreateArray();
  if (instr && !cJSON_IsString(instr)) fail(c, 400, "instructions", "\"instructions\" must be a string");
  if (cJSON_IsString(instr) && instr->valuestring[0]) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", instr->valuestring);
    cJSON_AddItemToArray(out, m);
  }
  if (!input) {
    fail(c, 400, "input", "missing \"input\"");
  } else if (cJSON_IsString(input)) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", input->valuestring);
    cJSON_AddItemToArray(out, m);
  } else if (!cJSON_IsArray(input)) {
    fail(c, 400, "input", "\"input\" must be a string or a list of items");
  } else {
    const cJSON *it;
    cJSON_ArrayForEach(it, input) {
      const char *type = str_of(it, "type");
      cJSON *m = cJSON_CreateObject();
      if (!cJSON_IsObject(it)) {
        cJSON_Delete(m);
        fail(c, 400, "input", "an input item must be an object");
        break;
      }
      if (type && !strcmp(type, "function_call")) {
        const char *id = str_of(it, "call_id"), *name = str_of(it, "name"), *args = str_of(it, "arguments");
        cJSON *calls = cJSON_CreateArray(), *call = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(call, "id", id ? id : "");
        cJSON_AddStringToObject(fn, "name", name ? name : "");
        cJSON_AddStringToObject(fn, "arguments", args ? args : "");
        cJSON_AddItemToObject(call, "function", fn);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON_AddItemToArray(calls, call);
        cJSON_AddItemToObject(m, "tool_calls", calls);
      } else if (type && !strcmp(type, "function_call_output")) {
        const char *output = str_of(it, "output"), *id = str_of(it, "call_id");
        cJSON_AddStringToObject(m, "role", "tool");
        cJSON_AddStringToObject(m, "content", output ? output : "");
        cJSON_AddStringToObject(m, "tool_call_id", id ? id : "");
      } else if (type && !strcmp(type, "reasoning")) {
        if (cJSON_GetObjectItemCaseSensitive(it, "encrypted_content") &&
            !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(it, "encrypted_content"))) {
          cJSON_Delete(m);
          fail(c, 400, "input", "Encrypted content is not supported.");
          break;
        }
        const cJSON *summary = cJSON_GetObjectItemCaseSensitive(it, "summary");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        const char *text = "";
        if (cJSON_GetArraySize(summary) == 1) text = str_of(summary->child, "text");
        else if (cJSON_GetArraySize(content) == 1) text = str_of(content->child, "text");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "reasoning", text ? text : "");
      } else if (type && strcmp(type, "message")) {
        cJSON_Delete(m);
        fail(c, 400, "input", "this input item type cannot be rendered (message, function_call, "
                              "function_call_output and reasoning can)");
        break;
      } else {
        /* a message item (or an easy input message): role and content, output_text parts
         * of an assistant's output message as its text */
        cJSON_Delete(m);
        m = cJSON_Duplicate(it, true);
        cJSON_DeleteItemFromObjectCaseSensitive(m, "type");
        cJSON_DeleteItemFromObjectCaseSensitive(m, "id");
        cJSON_DeleteItemFromObjectCaseSensitive(m, "status");
      }
      cJSON_AddItemToArray(out, m);
    }
  }
  cJSON_Delete(input);
  cJSON_Delete(instr);
  return out;
}

/* POST /v1/messages/count_tokens, /v1/messages/render, /v1/responses/input_tokens */
bool tokd_handle_provider(const tokd_server *srv, tokd_worker *w, const tokd_request *req, tok_buf *out,
                          unsigned long long *tokens, tokd_http_error *e)
{
  conv c = {.e = e};
  bool responses = req->ep == EP_RESPONSES_COUNT, ok = false;
  cJSON *msgs = responses ? responses_messages(&c, req) : anthropic_messages(&c, req);
  cJSON *tools_in = parse_raw(&req->tools);
  cJSON *tools = chat_tools(&c, tools_in, responses);
  char *msgs_text = NULL, *tools_text = NULL;
  const tok_encoding *enc;
  if (c.failed) goto done;
  if (!(msgs_text = cJSON_PrintUnformatted(msgs)) || (tools && !(tools_text = cJSON_PrintUnformatted(tools)))) {
    tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
    goto done;
  }
  tokd_request chat = *req;
  chat.messages = (tokd_text){msgs_text, strlen(msgs_text)};
  chat.tools = tools_text ? (tokd_text){tools_text, strlen(tools_text)} : (tokd_text){NULL, 0};
  chat.add_special_tokens = false; /* vLLM's chat default */
  if (req->ep == EP_MESSAGES_RENDER) {
    /* _build_base_request: max_tokens (required, positive) is also max_completion_tokens,
     * stop_sequences the stop strings; a stream asks for usage with continuous stats */
    static const char stream_options[] = "{\"include_usage\":true,\"continuous_usage_stats\":true}";
    const tokd_text *max = &req->raw[TOKD_F_MAX_TOKENS];
    char *end = NULL;
    long long mt = max->s ? strtoll(max->s, &end, 10) : 0;
    if (!max->s || end != max->s + max->len || mt <= 0) {
      tokd_error_set(e, 400, "invalid_value", "max_tokens", "max_tokens must be positive");
      goto done;
    }
    chat.raw[TOKD_F_MAX_COMPLETION_TOKENS] = *max;
    chat.raw[TOKD_F_STOP] = req->raw[TOKD_F_STOP_SEQUENCES];
    const tokd_text *st = &req->raw[TOKD_F_STREAM];
    if (st->s && st->len == 4 && !memcmp(st->s, "true", 4))
      chat.raw[TOKD_F_STREAM_OPTIONS] = (tokd_text){stream_options, sizeof stream_options - 1};
    ok = tokd_handle_render(srv, w, &chat, out, tokens, e);
    goto done;
  }
  if (!tokd_resolve_encoding(srv, &chat, &enc, e) || !tokd_render_chat(srv, w, &chat, enc, out->limit, e)) goto done;
  tok_special_set set;
  tok_special_set_all(enc, &set);
  tok_encode_opts opts = {.allowed_special = &set, .prefix_cache = srv->prefix_cache};
  tok_error te;
  /* encoded, not only counted: an agent counts a conversation before each turn, and the ids
   * kept in the prefix cache make the next count (and the next render) cost the new turn */
  tok_encode_result r;
  if (tok_encode(enc, w->scratch, w->chat.data ? w->chat.data : "", w->chat.len, &opts, &r, &te) != TOK_OK) {
    tokd_core_error(e, &te, "messages");
    goto done;
  }
  size_t n = r.len;
  /* count_tokens renders through render_chat_request, whose length check applies (no
   * output tokens requested); Responses' count is tokd's own and counts any length */
  if (!responses && !tokd_render_fits(srv, enc, n, 0, e)) goto done;
  *tokens = n;
  char num[32];
  snprintf(num, sizeof num, "%zu", n);
  tok_err rc;
  if (responses)
    rc = tokd_json_lit(out, "{\"object\":\"response.input_tokens\",\"input_tokens\":");
  else
    rc = tokd_json_lit(out, "{\"input_tokens\":");
  if (rc == TOK_OK) rc = tokd_json_lit(out, num);
  if (rc == TOK_OK && !responses) rc = tokd_json_lit(out, ",\"context_management\":{\"original_input_tokens\":");
  if (rc == TOK_OK && !responses) rc = tokd_json_lit(out, num);
  if (rc == TOK_OK) rc = tokd_json_lit(out, responses ? "}" : "}}");
  ok = rc == TOK_OK || tokd_too_large(e);
done:
  cJSON_Delete(msgs);
  cJSON_Delete(tools_in);
  cJSON_Delete(tools);
  free(msgs_text);
  free(tools_text);
  return ok;
}

/*
 * messages.c — vLLM's message normalizer: the conversation a chat template sees is not
 * the one the client sent, but the one vLLM's chat parser builds from it
 * (vllm/entrypoints/chat_utils.py: _parse_chat_message_content, _postprocess_messages;
 * openai/chat_completion/protocol.py: _normalize_messages_before). Every chat entry of
 * tokd (/tokenize and /chat_tokenize with messages, /apply-template, the render API, the
 * counting APIs, `tokd chat`, the Python module) renders through tok_chat_render, which
 * calls this, so one conversation gives the same ids everywhere, and the ids vLLM's
 * engine would see.
 *
 * Each message is rebuilt, as vLLM rebuilds it, in vLLM's key order: role, content, then
 * for an assistant tool_calls, reasoning and reasoning_content (both set from either), for
 * a tool message tool_call_id, then name (and developer's tools). Other keys are dropped
 * (vLLM drops them too). Content becomes the text parts joined by "\n" ("string" format)
 * or a list of {"type": "text", "text"} parts ("openai" format: templates that loop over
 * content); a tool message's text parts are joined in both formats. Tool-call arguments
 * sent as a JSON string are parsed into an object; arguments that are not a JSON object
 * become {} (vLLM coerces them so a conversation with one bad call stays usable); an empty
 * tool_calls list is dropped. Tools become {"type": "function", "function": {"name",
 * "description", "parameters"}} as ChatCompletionToolsParam.model_dump() gives them.
 */
#include <string.h>

#include "chat/messages.h"

static bool str_is(jv v, const char *s)
{
  size_t n = strlen(s);
  return v.t == JV_STR && v.u.s.n == n && memcmp(v.u.s.p, s, n) == 0;
}

static const jv *get(jv dict, const char *k)
{
  return tok__jd_get_str(dict.u.d, k, strlen(k));
}

static void put(jrender *r, jdict *d, const char *k, jv v)
{
  tok__jd_set(r, d, tok__jv_str(k, strlen(k)), v);
}

static void drop(jdict *d, const char *k)
{
  size_t n = strlen(k);
  for (size_t i = 0; i < d->n; i++)
    if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, k, n)) {
      memmove(d->k + i, d->k + i + 1, (d->n - i - 1) * sizeof(jv));
      memmove(d->v + i, d->v + i + 1, (d->n - i - 1) * sizeof(jv));
      d->n--;
      return;
    }
}

static jv text_part(jrender *r, jv text)
{
  jdict *p = tok__jd_new(r, 2);
  put(r, p, "type", tok__jv_str("text", 4));
  put(r, p, "text", text);
  return (jv){.t = JV_DICT, .u.d = p};
}

/* The texts of a message's content (vLLM: _parse_chat_message_content_parts): a string is
 * one text part; None none; parts of type text, input_text, output_text, refusal and
 * thinking give their text (a text or refusal part without one is skipped); others are
 * refused. Returns a list of strings. */
static jv content_texts(jrender *r, jv content, size_t mi)
{
  if (content.t == JV_UNDEF || content.t == JV_NONE) return tok__jv_list_new(r, 0);
  if (content.t == JV_STR) {
    jv l = tok__jv_list_new(r, 1);
    l.u.l->v[0] = content;
    return l;
  }
  if (content.t != JV_LIST)
    tok__jr_fail(r, TOK_EINVAL, "messages[%zu]: \"content\" must be a string, a list of parts or null", mi);
  jv out = tok__jv_list_new(r, content.u.l->n);
  size_t n = 0;
  for (size_t i = 0; i < content.u.l->n; i++) {
    jv part = content.u.l->v[i];
    if (part.t == JV_STR) {
      out.u.l->v[n++] = part;
      continue;
    }
    if (part.t != JV_DICT)
      tok__jr_fail(r, TOK_EINVAL, "messages[%zu].content[%zu]: a content part must be an object", mi, i);
    const jv *type = get(part, "type");
    if (!type || type->t != JV_STR)
      tok__jr_fail(r, TOK_EINVAL, "messages[%zu].content[%zu]: Missing 'type' field in multimodal part.", mi, i);
    const char *key = str_is(*type, "refusal") ? "refusal" : str_is(*type, "thinking") ? "thinking" : "text";
    if (!str_is(*type, "text") && !str_is(*type, "input_text") && !str_is(*type, "output_text") &&
        !str_is(*type, "refusal") && !str_is(*type, "thinking"))
      tok__jr_fail(r, TOK_EINVAL, "messages[%zu].content[%zu]: content part type '%.*s' is not supported (text only)",
              mi, i, (int)(type->u.s.n > 40 ? 40 : type->u.s.n), type->u.s.p);
    const jv *text = get(part, key);
    if ((!text || text->t == JV_NONE) && (str_is(*type, "text") || str_is(*type, "refusal"))) continue;
    if (!text || text->t != JV_STR)
      tok__jr_fail(r, TOK_EINVAL, "messages[%zu].content[%zu]: a %.*s part needs a string \"%s\"", mi, i,
              (int)type->u.s.n, type->u.s.p, key);
    out.u.l->v[n++] = *text;
  }
  out.u.l->n = n;
  return out;
}

static jv join_lines(jrender *r, jv texts)
{
  size_t total = 0;
  for (size_t i = 0; i < texts.u.l->n; i++) total += texts.u.l->v[i].u.s.n + 1;
  if (texts.u.l->n == 1) return texts.u.l->v[0];
  char *o = tok__jr_alloc(r, total + 1);
  size_t at = 0;
  for (size_t i = 0; i < texts.u.l->n; i++) {
    if (i) o[at++] = '\n';
    memcpy(o + at, texts.u.l->v[i].u.s.p, texts.u.l->v[i].u.s.n);
    at += texts.u.l->v[i].u.s.n;
  }
  o[at] = 0;
  return tok__jv_str(o, at);
}

/* json.loads(s) when it gives an object, else None: a parse failure must not end the
 * render, so the reader's exit is borrowed for the call. */
static jv try_json_object(jrender *r, jv s)
{
  jmp_buf saved;
  memcpy(saved, r->exit, sizeof saved);
  tok_error keep;
  if (r->err) keep = *r->err;
  volatile jv v = tok__jv_none();
  volatile bool failed = false;
  if (setjmp(r->exit) == 0) {
    jv parsed = tok__jv_from_json(r, s.u.s.p, s.u.s.n, "arguments");
    v = parsed;
  } else {
    failed = true;
  }
  memcpy(r->exit, saved, sizeof saved);
  /* only a parse failure becomes {}: the render's memory limit or deadline still ends it
   * (vLLM would have parsed the text, so {} would give other ids); its error is set */
  tok_err code = failed && r->err ? r->err->code : TOK_EINVAL;
  if (code != TOK_EINVAL) longjmp(r->exit, (int)code);
  if (r->err) *r->err = keep;
  jv out = v;
  return out.t == JV_DICT ? out : tok__jv_none();
}

/* _postprocess_messages: one assistant message's tool calls. */
static void tool_calls(jrender *r, jdict *m, size_t mi)
{
  const jv *tc = tok__jd_get_str(m, "tool_calls", 10);
  if (!tc || tc->t != JV_LIST) return;
  if (tc->u.l->n == 0) { /* keeps templates on the plain assistant path */
    drop(m, "tool_calls");
    return;
  }
  for (size_t i = 0; i < tc->u.l->n; i++) {
    jv item = tc->u.l->v[i];
    if (item.t != JV_DICT)
      tok__jr_fail(r, TOK_EINVAL, "messages[%zu].tool_calls[%zu]: assistant tool_calls entries must be objects.", mi, i);
    const jv *type = get(item, "type"), *fn = get(item, "function");
    if ((type && !str_is(*type, "function")) || !fn || fn->t != JV_DICT)
      tok__jr_fail(r, TOK_EINVAL, "messages[%zu].tool_calls[%zu]: chat completions only support assistant tool_calls "
              "of type 'function'.", mi, i);
    const jv *args = get(*fn, "arguments");
    jv parsed = tok__jv_none();
    if (args && tok__jv_truthy(*args)) {
      if (args->t == JV_DICT) parsed = *args;
      else if (args->t == JV_STR) parsed = try_json_object(r, *args);
    }
    if (parsed.t != JV_DICT) parsed = (jv){.t = JV_DICT, .u.d = tok__jd_new(r, 0)};
    put(r, fn->u.d, "arguments", parsed);
  }
}

jv tok__chat_normalize_messages(jrender *r, jv msgs, bool openai_format)
{
  jv out = tok__jv_list_new(r, msgs.u.l->n);
  for (size_t i = 0; i < msgs.u.l->n; i++) {
    jv m = msgs.u.l->v[i];
    if (m.t != JV_DICT) tok__jr_fail(r, TOK_EINVAL, "messages[%zu]: expected an object", i);
    const jv *role = get(m, "role");
    if (!role || role->t != JV_STR) tok__jr_fail(r, TOK_EINVAL, "messages[%zu]: \"role\" must be a string", i);
    const jv *content = get(m, "content");
    /* the request validator renames reasoning_content to reasoning when reasoning is unset */
    const jv *reasoning = get(m, "reasoning");
    if (!reasoning || reasoning->t == JV_NONE) reasoning = get(m, "reasoning_content");
    if (reasoning && reasoning->t == JV_NONE) reasoning = NULL;
    jv texts = content_texts(r, content ? *content : tok__jv_none(), i);
    jdict *n = tok__jd_new(r, 8);
    put(r, n, "role", *role);
    jv c;
    if (openai_format) {
      c = tok__jv_list_new(r, texts.u.l->n);
      for (size_t k = 0; k < texts.u.l->n; k++) c.u.l->v[k] = text_part(r, texts.u.l->v[k]);
    } else {
      c = join_lines(r, texts);
    }
    if (str_is(*role, "tool")) c = texts.u.l->n ? join_lines(r, texts) : tok__jv_str("", 0);
    put(r, n, "content", c);
    if (str_is(*role, "assistant")) {
      const jv *tc = get(m, "tool_calls");
      if (tc && tc->t != JV_NONE) {
        if (tc->t != JV_LIST)
          tok__jr_fail(r, TOK_EINVAL, "messages[%zu]: \"tool_calls\" must be a list", i);
        put(r, n, "tool_calls", *tc);
      }
      if (reasoning) {
        if (reasoning->t != JV_STR) tok__jr_fail(r, TOK_EINVAL, "messages[%zu]: \"reasoning\" must be a string", i);
        put(r, n, "reasoning", *reasoning);
        put(r, n, "reasoning_content", *reasoning);
      }
    } else if (str_is(*role, "tool")) {
      const jv *id = get(m, "tool_call_id");
      if (id) put(r, n, "tool_call_id", *id);
    }
    const jv *name = get(m, "name");
    if (name && name->t == JV_STR) put(r, n, "name", *name);
    const jv *task = get(m, "task");
    if (task && task->t == JV_STR) put(r, n, "task", *task);
    if (str_is(*role, "developer")) {
      const jv *tools = get(m, "tools");
      put(r, n, "tools", tools ? *tools : tok__jv_none());
    }
    if (str_is(*role, "assistant")) tool_calls(r, n, i);
    out.u.l->v[i] = (jv){.t = JV_DICT, .u.d = n};
  }
  return out;
}

jv tok__chat_normalize_tools(jrender *r, jv tools)
{
  if (tools.t == JV_NONE || tools.t == JV_UNDEF) return tok__jv_none();
  if (tools.t != JV_LIST) tok__jr_fail(r, TOK_EINVAL, "tools: expected a list of tool objects");
  jv out = tok__jv_list_new(r, tools.u.l->n);
  for (size_t i = 0; i < tools.u.l->n; i++) {
    jv t = tools.u.l->v[i];
    const jv *type = t.t == JV_DICT ? get(t, "type") : NULL;
    const jv *fn = t.t == JV_DICT ? get(t, "function") : NULL;
    if (t.t != JV_DICT || (type && !str_is(*type, "function")) || !fn || fn->t != JV_DICT)
      tok__jr_fail(r, TOK_EINVAL, "tools[%zu]: expected {\"type\": \"function\", \"function\": {...}}", i);
    const jv *name = get(*fn, "name"), *desc = get(*fn, "description"), *params = get(*fn, "parameters");
    if (!name || name->t != JV_STR) tok__jr_fail(r, TOK_EINVAL, "tools[%zu].function: \"name\" must be a string", i);
    if (desc && desc->t != JV_STR && desc->t != JV_NONE)
      tok__jr_fail(r, TOK_EINVAL, "tools[%zu].function: \"description\" must be a string", i);
    if (params && params->t != JV_DICT && params->t != JV_NONE)
      tok__jr_fail(r, TOK_EINVAL, "tools[%zu].function: \"parameters\" must be an object", i);
    jdict *f = tok__jd_new(r, 3);
    put(r, f, "name", *name);
    put(r, f, "description", desc ? *desc : tok__jv_none());
    put(r, f, "parameters", params ? *params : tok__jv_none());
    jdict *d = tok__jd_new(r, 2);
    put(r, d, "type", tok__jv_str("function", 8));
    put(r, d, "function", (jv){.t = JV_DICT, .u.d = f});
    out.u.l->v[i] = (jv){.t = JV_DICT, .u.d = d};
  }
  return out;
}

"""Long agent conversations for the chat tests, generated rather than committed (a
2,000-message session is ~300 KB of JSON): the same function feeds gen_chat_golden.py (which
records a SHA-256 of jinja2's rendering) and chat_test.py (which checks tokd's against it).

Each cycle is a user turn, an assistant tool call (arguments as an object), the tool's
result and the assistant's answer, with CJK, emoji and RTL text mixed in."""

LONG = {"agent_2000": 2000}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search", "description": "Search the web.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"},
            "filters": {"type": "object", "properties": {"lang": {"type": "string", "enum": ["en", "ja"]}}}},
            "required": ["query"]}}},
]

CITIES = ["Paris", "東京", "القاهرة", "São Paulo", "Zürich", "Москва"]


def agent_conversation(n):
    msgs = [{"role": "system", "content": "You are a helpful agent. Use tools when needed."}]
    i = 0
    while len(msgs) < n:
        city = CITIES[i % len(CITIES)]
        msgs.append({"role": "user", "content": f"Turn {i}: weather in {city}? 🌦"})
        msgs.append({"role": "assistant", "content": "", "tool_calls": [{
            "id": f"call_{i}", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": city, "days": 1 + i % 3}}}]})
        msgs.append({"role": "tool", "tool_call_id": f"call_{i}", "content": f'{{"temp": {i % 35}, "sky": "clear"}}'})
        msgs.append({"role": "assistant", "content": f"It is {i % 35} °C in {city}."})
        i += 1
    msgs = msgs[:n]
    if msgs[-1]["role"] == "assistant" and msgs[-2]["role"] == "tool":
        msgs = msgs[:-1]
    return {"messages": msgs, "tools": TOOLS}

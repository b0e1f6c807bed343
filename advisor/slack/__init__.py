"""Slack front end: the advisor answers mentions, direct messages and `/advisor` in Slack.

Slack event --verify/dedupe--> ack (< 3 s) --lazy--> Advisor --render--> Block Kit in the thread

What is where:
- `messages.py`: reading a request (the question, a "cases like mine" description, or a polite
  reply instead), the thread's earlier turns, and the bot's fixed replies;
- `blocks.py`: how an answer is laid out in Slack (Block Kit): the sentences with their markers,
  citations, a catalogue answer one section per case, feedback buttons and the link to the
  answer's web page, Slack's size limits;
- `preview.py`: the answer's text shown in its "looking" reply while a language model writes it;
- `delivery.py`: posting, editing and falling back, 429 waits and retries, dedupe and answer caches;
- `app.py`: the bolt App, its listeners and the answering flow;
- `server.py`: the HTTP (Events API) endpoint on waitress (signature checked before parsing, size
  and read-time limits) and Socket Mode start-up;
- `cli.py`: the `advisor slack` command.
"""

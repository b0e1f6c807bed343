"""The web page (Gradio): chat with the advisor and see the evidence behind every sentence.

Answers stream in sentence by sentence; every marker is drawn from `Answer.citations` (never
parsed from text), and the evidence panel shows each cited passage with its report, publisher,
year, section and case study, the quoted sentence highlighted. Follow-ups are condensed with the
conversation, filters restrict the search, thumbs up/down with a comment go to the feedback
store. Two tabs show the case-study catalogue: the explorer (filter by report and tags, a card
per case with every value's quote and passage) and "cases like mine". Nothing is fetched from
outside: analytics off, no share link, system fonts only.

What is where:
- `app.py`: `build_ui` (the components wired to the handlers), `serve`, `launch`, login pairs.
- `handlers.py`: `PageHandlers`, what each control does, as methods on plain values.
- `render.py`: the chat bubble's Markdown and the HTML panels, from typed values.
- `templates/`: the Jinja2 templates of the HTML panels, autoescaped. A template's line breaks and
  the indentation after them are dropped when it is loaded: break lines only between tags.
- `static/page.css`: the page's styles.
- `index_builder.py`: `IndexBuilder`, the index built in the background on first run.
"""

"""`trainlab dashboard`: a read-only web app over a runs directory and its study databases.

`files` keeps every path under the served directory, `runs` and `studies` gather the JSON the
pages draw (never writing anything), `server` serves it with the static front-end.
"""

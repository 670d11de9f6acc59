"""The platform's API as its own client uses it, for integration tests and benchmarks.

`api` is a requests session that remembers the access token of every session
it opens (`POST /sessions` answers it once) and presents it, as
`Authorization: Bearer <token>`, on every later request about that session:
a session answers only its owner.
"""

import re

import requests

SESSION_IN_PATH = re.compile(r"/sessions/([A-Za-z0-9_-]{1,64})(?:/|$)")


class PlaygroundAPI(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.tokens: dict[str, str] = {}

    def token(self, session_id: str) -> str | None:
        return self.tokens.get(session_id)

    def request(self, method, url, *args, **kwargs):
        match = SESSION_IN_PATH.search(url.split("?", 1)[0])
        if match and match.group(1) in self.tokens:
            kwargs["headers"] = {
                "Authorization": f"Bearer {self.tokens[match.group(1)]}",
                **(kwargs.get("headers") or {}),
            }
        response = super().request(method, url, *args, **kwargs)
        if method.upper() == "POST" and url.rstrip("/").endswith("/sessions") and response.status_code == 201:
            body = response.json()
            self.tokens[body["session_id"]] = body["access_token"]
        return response


api = PlaygroundAPI()

"""`/sessions/{id}/steps`: a session's steps beside its terminal, and a step's check and solution.

Anyone who may see the session may read its steps; checking and solving run
scripts in its instance as the learner, so they need what typing in its
terminal needs (the owner, or a read-write share link).
"""

import re

from rest_framework.request import Request
from rest_framework.response import Response

from labs import steps
from labs.steps_serializers import StepCheckSerializer, StepSerializer, StepSolveSerializer
from sessions_app.access import Access
from sessions_app.errors import StepNotFound
from sessions_app.views import PlaygroundAPIView

# A step's position in a path: 1 and up, and short enough that a made-up
# number never reaches the database as an integer it cannot hold.
_POSITION = re.compile(r"[1-9][0-9]{0,8}")


class StepViewSet(PlaygroundAPIView):
    def list(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_ONLY)
        return Response(StepSerializer(steps.session_steps(session=session), many=True).data)

    def check_step(self, request: Request, session_pk: str, position: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_WRITE)
        result = steps.step_check(session=session, position=_position(position))
        return Response(StepCheckSerializer(result).data)

    def solve_step(self, request: Request, session_pk: str, position: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_WRITE)
        result = steps.step_solve(session=session, position=_position(position))
        return Response(StepSolveSerializer(result).data)


def _position(text: str) -> int:
    if not _POSITION.fullmatch(text):
        raise StepNotFound(log_message=f"no step at position {text[:20]!r}")
    return int(text)

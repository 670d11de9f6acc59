"""Static files (the terminal's xterm.js, the pages' CSS) from WhiteNoise, without
taking the request off the event loop.

WhiteNoise's middleware is synchronous: under ASGI, Django would run it, and
with it every request after it, in a thread that calls back into the event
loop, where the sync views then ran, blocking every terminal of the process
for the time of each request. Its lookup is a dictionary access, so it is
done here in the loop, and only a static file's answer is built in a thread.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = None
            if self.may_serve(request.path_info):  # looks on disk: beside the loop
                static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)

    def may_serve(self, path: str) -> bool:
        """Whether a file of the path is one WhiteNoise would look for (find_file looks only there)."""
        return path.startswith(self.static_prefix) or any(path.startswith(prefix) for _, prefix in self.directories)

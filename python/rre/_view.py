"""What the original's buses share: a thin view of a router (the one given,
else the process's get_router())."""


class RouterView:
    def __init__(self, router=None):
        self._router = router

    @property
    def router(self):
        if self._router is not None:
            return self._router
        from .event_router import get_router

        return get_router()

    def subscribe(self, event_type, handler):
        return self.router.subscribe(event_type, handler)

    def unsubscribe(self, event_type, handler=None):
        return self.router.unsubscribe(event_type, handler)

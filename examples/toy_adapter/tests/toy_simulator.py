"""A simulated toy device, built on camhub.testing's SimulatedDevice (Digest auth, faults, clock)."""

from __future__ import annotations

from aiohttp import web

from camhub.testing.simulator import SimulatedDevice

#: The smallest valid JPEG a browser shows (1×1 grey), so snapshots are real pictures.
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d"
    "1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100ffc4001f000001050101"
    "0101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613"
    "516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a5354555657"
    "58595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4"
    "c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9"
)


class ToySimulator(SimulatedDevice):
    """Answers the toy JSON API; the token must match ``token``."""

    vendor = "toy"
    token = "toy-token"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/info", self._info)
        app.router.add_get("/api/time", self._time)
        app.router.add_get("/api/channels", self._channels)
        app.router.add_get("/api/snapshot", self._snapshot)

    def _token_ok(self, request: web.Request) -> bool:
        return request.headers.get("X-Toy-Token") == self.token

    async def _info(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            return web.json_response({"error": "bad token"}, status=403)
        p = self.profile
        return web.json_response({"model": p.model, "serial": p.serial, "firmware": p.firmware, "mac": p.mac})

    async def _time(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"utc": self.now().isoformat()})

    async def _channels(self, request: web.Request) -> web.StreamResponse:
        channels = [
            {"id": n, "name": f"Camera {n}", "audio": self.profile.audio}
            for n in range(1, self.profile.channels + 1)
        ]
        return web.json_response(channels)

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        channel = request.query.get("channel", "")
        if not channel.isdigit() or not 1 <= int(channel) <= self.profile.channels:
            return web.Response(status=404, text="no such channel")
        return web.Response(body=JPEG, content_type="image/jpeg")

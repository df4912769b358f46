"""tts and stt over a real mosquitto broker: control reaches playback through the broker, and
the speech tts writes is what stt hears."""

from __future__ import annotations

import itertools
from pathlib import Path

import trio
from tts_helpers import Collector

from _services import MosquittoBroker
from trioworks.bus import Bus, MqttTransport, TtsControl, TtsSay
from trioworks.core import RetryPolicy
from trioworks.services.stt import SttConfig, SttService, wav_source
from trioworks.services.tts import TtsConfig, TtsService

FAST = RetryPolicy(max_attempts=100, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
_ids = itertools.count()
LONG = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 31))
PHRASE = "turn off the lights in the kitchen"


def _bus(broker: MosquittoBroker, source: str) -> Bus:
    return Bus(MqttTransport(broker.url, client_id=f"{source}-{next(_ids)}", reconnect=FAST), source=source)


async def test_stop_over_mqtt_reaches_playback_and_stt_hears_tts(
    fresh_mosquitto: MosquittoBroker, espeak_ng: str, sox: str, tmp_path: Path
) -> None:
    tts = TtsService(
        _bus(fresh_mosquitto, "tts"),
        TtsConfig(player="wav", out_dir=tmp_path, voice="en-us+klatt", rate_wpm=150),
    )
    status, finals = Collector(), Collector()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client = _bus(fresh_mosquitto, "client")
            await nursery.start(client.run)
            await client.subscribe("tts/status", status)
            await client.subscribe("stt/final", finals)
            await nursery.start(tts.run)

            # The original's bug: stop arrived only after speech ended. Here it cuts ~80 s short.
            await client.publish("tts/say", TtsSay(text=LONG, utt_id="long"))
            await status.wait_event("speaking_start", "long")
            await client.publish("tts/control", TtsControl(action="stop", reason="barge-in"))
            stopped = await status.wait_event("stopped", "long")  # not ~80 s later: fail_after
            assert stopped.data.reason == "barge-in"
            assert ("speaking_end", "long") not in status.events()

            await client.publish("tts/say", TtsSay(text=PHRASE, utt_id="phrase"))
            await status.wait_event("speaking_end", "phrase")
            stt = SttService(
                _bus(fresh_mosquitto, "stt"),
                SttConfig(phrases=(PHRASE, "play some music")),
                source=wav_source(tts.outputs["phrase"], limiter=trio.CapacityLimiter(1)),
            )
            await nursery.start(stt.run)
            [final] = await finals.wait_for(1)
            nursery.cancel_scope.cancel()
    assert final.data.text == PHRASE
    assert final.envelope.source == "stt"

"""One cold engine whose first image and text batches arrive at once (run as a process).

    python -m tests.support.first_calls RUNTIME CACHE_DIR DEADLINE_SECONDS

Loads the known-answer checkpoint on ``RUNTIME`` with two lanes, then sends
a 32-picture batch and a 32-text batch together, so that the runtime's first
forwards come from its own threads at once (the image batcher, the text
batcher and a lane splitting a batch). Prints ``answered`` and exits 0; past
the deadline, faulthandler (which needs no GIL: a hung native call may hold
it) prints every thread's stack and exits 1.
"""

import faulthandler
import sys
import threading


def main(runtime, cache_dir, deadline):
    faulthandler.dump_traceback_later(deadline, exit=True)
    import numpy as np
    from PIL import Image

    from clipcheck.engine.clip import ClipEngine
    from tests.support.known_answer import KNOWN_ANSWER_MODEL

    engine = ClipEngine.load(
        model_name=str(KNOWN_ANSWER_MODEL), runtime=runtime, num_threads=2, concurrent_encoders=True,
        runtime_cache_dir=cache_dir, batch_size=32,
    )
    rng = np.random.default_rng()
    pictures = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(32)]
    texts = [f"a photo of item {number} {'with more words ' * (number % 5)}" for number in range(32)]
    together = threading.Barrier(2)
    answers = {}

    def send(name, encode, items):
        together.wait()
        answers[name] = len(encode(items))

    threads = [
        threading.Thread(target=send, args=("images", engine.encode_images, pictures)),
        threading.Thread(target=send, args=("texts", lambda items: engine.encode_texts(items)[0], texts)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    faulthandler.cancel_dump_traceback_later()
    assert answers == {"images": 32, "texts": 32}, answers
    print("answered", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))

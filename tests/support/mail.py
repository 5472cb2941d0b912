"""Sign-in links as the SMTP sink received them."""

import re

from tests.support.waiting import eventually

LINK = re.compile(r"(http\S+/api/v1/signin/post\?token=(\S+))")


def wait_for_mail(sink, to: str, timeout: float = 30):
    def arrived():
        for message in list(sink.messages):
            if message["To"] == to:
                sink.messages.remove(message)
                return message
        return None

    return eventually(arrived, timeout, interval=0.05)


def token_from(message) -> str:
    return LINK.search(message.get_payload(decode=True).decode()).group(2)


def link_from(message) -> str:
    return LINK.search(message.get_payload(decode=True).decode()).group(1)

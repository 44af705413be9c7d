import requests

import sample_app


def main() -> None:
    print(f"{sample_app.GREETING} (requests {requests.__version__})")

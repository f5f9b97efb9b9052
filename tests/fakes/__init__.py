"""Real stand-ins for outside systems, shared by the test folders.

- `tests.fakes.twilio_api`: a loopback fake of Twilio's REST API (media, deletion, listing) with
  switchable failures; fixture `fake_twilio`.
- `tests.fakes.s3`: moto's S3 server on loopback; fixtures `moto_server`, `aws_env`,
  `s3_client`, `s3_bucket`, `s3_versioned_bucket`.

Import the fixtures into a conftest to use them.
"""

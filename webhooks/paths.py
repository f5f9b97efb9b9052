"""Every path Twilio is told to call, written once: the routes and the TwiML that names them."""

VOICE = "/twilio/voice"
FALLBACK = "/twilio/voice/fallback"
DIAL_COMPLETE = "/twilio/voice/dial-complete"
STATUS = "/twilio/voice/status"
WHISPER = "/twilio/voice/whisper"
CALLBACK_REQUEST = "/twilio/voice/callback-request"
# The <Dial action> of the fallback dial (to FALLBACK_NUMBER): it reports like every dial, and
# never dials again, so a failing database cannot make it loop.
FALLBACK_DIAL_COMPLETE = "/twilio/voice/fallback/dial-complete"
# The <Gather action> of the post-call survey.
SURVEY = "/twilio/voice/survey"
RECORDING_STATUS = "/twilio/recording-status"
HEALTH = "/healthz"

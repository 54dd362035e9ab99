# Dates as every other page writes them (runs.time_format): "2026-11-30 14:05 UTC". The
# admin formats dates with these, so its lists and pages agree with the dashboard.
DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"

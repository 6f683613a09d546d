"""news-monitor: watch news feeds, match rules, fold one story's reports into one alert."""

__version__ = "0.1.0"

"""Local control: the unix socket the daemon serves and the evsectl client."""

"""Reports: clicks, conversions, money by day, offer, partner, sub id, country and device."""

-- Users' profiles as identity's events now carry them: by id, with no name; the mobile number
-- opened from its sealed form. changed_at keeps an older event (a record of the first shapes,
-- keyed by user name and so in another partition) from overwriting a newer one.
ALTER TABLE user_profiles DROP COLUMN user_name;
ALTER TABLE user_profiles ADD COLUMN changed_at timestamptz;

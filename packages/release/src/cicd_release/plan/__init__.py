"""What a push needs: from the paths it changed (changes) and from what was last released (release_state)."""

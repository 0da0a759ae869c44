// @ts-check
/** UI text in Finnish, Swedish and English. Plain, warm words: "Katso", "Osallistu". */

/** @typedef {'fi' | 'sv' | 'en'} Lang */

/** @type {Record<Lang, Record<string, string>>} */
export const TEXT = {
  fi: {
    code_title: 'Osallistu esitykseen',
    code_label: 'Kirjoita esityksen koodi',
    code_help: 'Koodissa on kuusi numeroa.',
    code_submit: 'Katso',
    code_wrong: 'Tällä koodilla ei löytynyt esitystä. Tarkista numerot.',
    code_short: 'Koodissa on kuusi numeroa. Tarkista numerot.',
    code_wait: 'Liian monta yritystä. Odota hetki ja kokeile uudelleen.',
    code_found: 'Löytyi: {title}.',
    programme_title: 'Ohjelmassa',
    programme_empty: 'Ei esityksiä juuri nyt.',
    state_scheduled: 'Tulossa', state_live: 'Nyt suorana', state_paused: 'Tauolla',
    state_ended: 'Päättynyt',
    programme_watch: 'Katso',
    watch_opening: 'Hetki, esitys avautuu…',
    watch_scheduled: 'Esitys ei ole vielä alkanut. Kuva tulee tähän itsestään, kun esitys alkaa.',
    watch_live: 'Nyt suorana.',
    watch_waiting_picture: 'Nyt suorana. Kuva tulee hetken kuluttua…',
    watch_paused: 'Esitys on tauolla. Se jatkuu tähän itsestään.',
    watch_ended: 'Esitys on päättynyt. Kiitos, että katsoit!',
    watch_lost: 'Yhteys katkesi. Yritetään uudelleen…',
    sound_on: 'Laita ääni päälle',
    watch_back: 'Takaisin ohjelmaan',
    perform_link_missing: 'Esiintyjän linkki puuttuu. Avaa sivu järjestäjältä saamallasi linkillä.',
    perform_link_invalid: 'Tämä esiintyjän linkki ei kelpaa.',
    perform_camera_asking: 'Salli kamera ja mikrofoni, kun selain kysyy.',
    perform_no_camera: 'Kameraa tai mikrofonia ei saatu käyttöön. Tarkista selaimen luvat ja lataa sivu uudelleen.',
    perform_ready: 'Valmis. Yleisö ei vielä näe sinua.',
    perform_starting: 'Aloitetaan…',
    perform_live: 'Suorana: yleisö näkee ja kuulee sinut.',
    perform_paused: 'Tauolla: yleisö odottaa.',
    perform_ended: 'Esitys on päättynyt.',
    perform_lost: 'Yhteys katkesi. Aloita lähetys uudelleen.',
    perform_failed: 'Lähetys ei alkanut ({code}). Yritä uudelleen.',
    go_live: 'Aloita lähetys',
    stop_live: 'Lopeta lähetys',
    viewers: 'Katsojia nyt: {count}',
    fact_code: 'Yleisön koodi',
    fact_state: 'Tila',
    fact_key: 'Lähetysavain (OBS)',
    fact_whip: 'WHIP-osoite (OBS)',
    fact_rtmp: 'RTMP-osoite (OBS)',
    rotate_key: 'Vaihda avain',
    warn_b_frames: 'Lähetysohjelma lähettää B-kuvia, joita katsojat eivät voi näyttää. Aseta OBS:n B-frames-asetukseksi 0.',
    warn_unsupported_codec: 'Lähetysohjelma käyttää muotoa, jota emme voi välittää. Valitse H.264 ja AAC tai Opus.',
    key_rotated: 'Uusi avain on käytössä. Vanha ei enää toimi.',
    preview_label: 'Oma kuvasi',
    error: 'Jokin meni vikaan. Yritä hetken päästä uudelleen.',
  },
  sv: {
    code_title: 'Delta i föreställningen',
    code_label: 'Skriv föreställningens kod',
    code_help: 'Koden har sex siffror.',
    code_submit: 'Titta',
    code_wrong: 'Ingen föreställning hittades med den koden. Kontrollera siffrorna.',
    code_short: 'Koden har sex siffror. Kontrollera siffrorna.',
    code_wait: 'För många försök. Vänta en stund och försök igen.',
    code_found: 'Hittades: {title}.',
    programme_title: 'På programmet',
    programme_empty: 'Inga föreställningar just nu.',
    state_scheduled: 'Kommande', state_live: 'Direkt nu', state_paused: 'Paus',
    state_ended: 'Avslutad',
    programme_watch: 'Titta',
    watch_opening: 'Ett ögonblick, föreställningen öppnas…',
    watch_scheduled: 'Föreställningen har inte börjat än. Bilden kommer hit av sig själv när den börjar.',
    watch_live: 'Direkt nu.',
    watch_waiting_picture: 'Direkt nu. Bilden kommer om en stund…',
    watch_paused: 'Föreställningen har paus. Den fortsätter här av sig själv.',
    watch_ended: 'Föreställningen är slut. Tack för att du tittade!',
    watch_lost: 'Förbindelsen bröts. Vi försöker igen…',
    sound_on: 'Slå på ljudet',
    watch_back: 'Tillbaka till programmet',
    perform_link_missing: 'Länken för uppträdande saknas. Öppna sidan med länken från arrangören.',
    perform_link_invalid: 'Den här länken gäller inte.',
    perform_camera_asking: 'Tillåt kameran och mikrofonen när webbläsaren frågar.',
    perform_no_camera: 'Kameran eller mikrofonen kunde inte användas. Kontrollera webbläsarens tillstånd och ladda om sidan.',
    perform_ready: 'Klar. Publiken ser dig inte än.',
    perform_starting: 'Startar…',
    perform_live: 'Direkt: publiken ser och hör dig.',
    perform_paused: 'Paus: publiken väntar.',
    perform_ended: 'Föreställningen är slut.',
    perform_lost: 'Förbindelsen bröts. Börja sända igen.',
    perform_failed: 'Sändningen startade inte ({code}). Försök igen.',
    go_live: 'Börja sända',
    stop_live: 'Sluta sända',
    viewers: 'Tittare nu: {count}',
    fact_code: 'Publikens kod',
    fact_state: 'Läge',
    fact_key: 'Sändningsnyckel (OBS)',
    fact_whip: 'WHIP-adress (OBS)',
    fact_rtmp: 'RTMP-adress (OBS)',
    rotate_key: 'Byt nyckel',
    warn_b_frames: 'Sändningsprogrammet skickar B-bilder som tittarna inte kan visa. Ställ in B-frames på 0 i OBS.',
    warn_unsupported_codec: 'Sändningsprogrammet använder ett format vi inte kan förmedla. Välj H.264 och AAC eller Opus.',
    key_rotated: 'Den nya nyckeln gäller. Den gamla fungerar inte längre.',
    preview_label: 'Din egen bild',
    error: 'Något gick fel. Försök igen om en stund.',
  },
  en: {
    code_title: 'Take part in a show',
    code_label: "Type the show's code",
    code_help: 'The code has six digits.',
    code_submit: 'Watch',
    code_wrong: 'No show has this code. Please check the digits.',
    code_short: 'The code has six digits. Please check the digits.',
    code_wait: 'Too many tries. Please wait a moment and try again.',
    code_found: 'Found: {title}.',
    programme_title: 'On the programme',
    programme_empty: 'No shows right now.',
    state_scheduled: 'Coming up', state_live: 'Live now', state_paused: 'On a break',
    state_ended: 'Ended',
    programme_watch: 'Watch',
    watch_opening: 'One moment, the show is opening…',
    watch_scheduled: 'The show has not started yet. The picture will appear here by itself when it starts.',
    watch_live: 'Live now.',
    watch_waiting_picture: 'Live now. The picture is coming in a moment…',
    watch_paused: 'The show is on a break. It will continue here by itself.',
    watch_ended: 'The show has ended. Thank you for watching!',
    watch_lost: 'The connection was lost. Trying again…',
    sound_on: 'Turn on sound',
    watch_back: 'Back to the programme',
    perform_link_missing: 'The performer link is missing. Open this page with the link from the organiser.',
    perform_link_invalid: 'This performer link is not valid.',
    perform_camera_asking: 'Allow the camera and microphone when the browser asks.',
    perform_no_camera: 'The camera or microphone could not be used. Check the browser permissions and reload the page.',
    perform_ready: 'Ready. The audience cannot see you yet.',
    perform_starting: 'Starting…',
    perform_live: 'Live: the audience sees and hears you.',
    perform_paused: 'Paused: the audience is waiting.',
    perform_ended: 'The show has ended.',
    perform_lost: 'The connection was lost. Go live again.',
    perform_failed: 'Going live did not work ({code}). Please try again.',
    go_live: 'Go live',
    stop_live: 'Stop',
    viewers: 'Watching now: {count}',
    fact_code: 'Audience code',
    fact_state: 'State',
    fact_key: 'Stream key (OBS)',
    fact_whip: 'WHIP address (OBS)',
    fact_rtmp: 'RTMP address (OBS)',
    rotate_key: 'Renew key',
    warn_b_frames: 'Your encoder sends B-frames, which viewers cannot show. Set B-frames to 0 in OBS.',
    warn_unsupported_codec: 'Your encoder uses a format we cannot forward. Choose H.264 and AAC or Opus.',
    key_rotated: 'The new key is in use. The old one no longer works.',
    preview_label: 'Your own picture',
    error: 'Something went wrong. Please try again in a moment.',
  },
};

/** @returns {Lang} */
export function currentLang() {
  const saved = localStorage.getItem('lampio.lang');
  if (saved === 'fi' || saved === 'sv' || saved === 'en') return saved;
  const nav = (navigator.language || 'fi').slice(0, 2);
  return nav === 'sv' || nav === 'en' ? nav : 'fi';
}

/**
 * @param {string} key
 * @param {Record<string, string>} [vars]
 */
export function t(key, vars = {}) {
  const text = TEXT[currentLang()][key] ?? TEXT.fi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? '');
}

/** Fill every [data-t] element and mark the chosen language button. */
export function applyLang() {
  const lang = currentLang();
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) {
    const key = el.getAttribute('data-t');
    if (key) el.textContent = t(key);
  }
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.getAttribute('data-lang') === lang));
  }
}

/** Wire the language buttons. @param {() => void} onChange */
export function setupLangButtons(onChange) {
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.addEventListener('click', () => {
      localStorage.setItem('lampio.lang', button.getAttribute('data-lang') || 'fi');
      applyLang();
      onChange();
    });
  }
  applyLang();
}

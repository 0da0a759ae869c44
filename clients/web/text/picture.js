// @ts-check
/** UI text of the picture on a weak link (the Watch page's "sound only" and "best picture"), in
 * Finnish, Swedish and English (merged into i18n.js TEXT). */

/** @type {Record<'fi' | 'sv' | 'en', Record<string, string>>} */
export default {
  fi: {
    picture_offer: 'Kuva pysähtyy, koska yhteys on heikko. Voit kuunnella pelkkää ääntä.',
    picture_sound_only: 'Kuuntelet pelkkää ääntä. Kuva on pois, jotta ääni kulkee heikollakin yhteydellä.',
    picture_smaller: 'Heikko yhteys – kuva pienempänä.',
    picture_choose_sound: 'Pelkkä ääni',
    picture_choose_best: 'Näytä kuva',
    picture_sound_lighter: 'Yhteys on hyvin heikko, joten ääni tulee kevyempänä.',
    picture_sharpest: 'Näet tarkimman kuvan. Heikolla yhteydellä se voi pysähdellä.',
    picture_choose_sharpest: 'Näytä tarkin kuva',
    picture_choose_fitted: 'Sovita kuva yhteyteen',
    picture_settings: 'Kuva ja ääni',
    picture_setting_auto: 'Kuva yhteyden mukaan (suositus)',
    picture_setting_best: 'Aina tarkin kuva',
    picture_setting_sound: 'Pelkkä ääni',
  },
  sv: {
    picture_offer: 'Bilden stannar eftersom förbindelsen är svag. Du kan lyssna på bara ljudet.',
    picture_sound_only: 'Du lyssnar på bara ljudet. Bilden är av så att ljudet går fram även på en svag förbindelse.',
    picture_smaller: 'Svag förbindelse – bilden är mindre.',
    picture_choose_sound: 'Bara ljud',
    picture_choose_best: 'Visa bilden',
    picture_sound_lighter: 'Förbindelsen är mycket svag, så ljudet kommer i lättare form.',
    picture_sharpest: 'Du ser den skarpaste bilden. På en svag förbindelse kan den stanna upp.',
    picture_choose_sharpest: 'Visa den skarpaste bilden',
    picture_choose_fitted: 'Anpassa bilden efter förbindelsen',
    picture_settings: 'Bild och ljud',
    picture_setting_auto: 'Bilden efter förbindelsen (rekommenderas)',
    picture_setting_best: 'Alltid den skarpaste bilden',
    picture_setting_sound: 'Bara ljud',
  },
  en: {
    picture_offer: 'The picture keeps stopping because the connection is weak. You can listen to the sound alone.',
    picture_sound_only: 'You are listening to the sound alone. The picture is off so the sound gets through on a weak connection.',
    picture_smaller: 'Weak connection – the picture is smaller.',
    picture_choose_sound: 'Sound only',
    picture_choose_best: 'Show the picture',
    picture_sound_lighter: 'The connection is very weak, so the sound comes lighter.',
    picture_sharpest: 'You see the sharpest picture. On a weak connection it may stop now and then.',
    picture_choose_sharpest: 'Show the sharpest picture',
    picture_choose_fitted: 'Fit the picture to the connection',
    picture_settings: 'Picture and sound',
    picture_setting_auto: 'Picture to suit the connection (recommended)',
    picture_setting_best: 'Always the sharpest picture',
    picture_setting_sound: 'Sound only',
  },
};
